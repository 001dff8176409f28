# Souk server image. Build: docker build -t souk .
# Needs DATABASE_URL, REDIS_URL and a JWT key directory (JWT_KEY_DIR, default /keys) mounted
# or created with `python -m api keygen --dir /keys`. See docker-compose.yml for a full set-up.
FROM python:3.11-slim AS build
WORKDIR /src
COPY . .
# Dependencies only (then our own packages are removed again): the runtime stage runs Souk from
# /app, next to its migrations/ folder.
RUN mkdir -p loadtests && touch loadtests/__init__.py \
 && pip install --no-cache-dir --prefix=/install . \
 && cd /install/lib/python3.11/site-packages \
 && rm -rf core api realtime auctions streaming tracking loadtests

FROM python:3.11-slim
# /metrics shows balances: its own listener on 9100 (publish it only to your Prometheus).
# Behind a reverse proxy set TRUSTED_PROXIES to its address (SECURITY.md).
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 JWT_KEY_DIR=/keys SOUK_ENV=prod \
    METRICS_PORT=9100 METRICS_HOST=0.0.0.0
RUN useradd --system --create-home --uid 10001 souk && mkdir /keys && chown souk /keys
COPY --from=build /install /usr/local
COPY --from=build /src /app
WORKDIR /app
USER souk
EXPOSE 8000 9100
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"
CMD ["python", "-m", "api", "serve", "--host", "0.0.0.0", "--port", "8000"]
