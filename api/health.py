"""Liveness, readiness and metrics endpoints.

`/metrics` shows business figures (ledger balances per account kind), so it is not public when
an operator says so: with METRICS_TOKEN it needs `Authorization: Bearer <token>`; with
METRICS_PORT it is served only by its own listener (`serve_metrics`, bound to METRICS_HOST,
127.0.0.1 by default) and the main port answers 404. SOUK_ENV=prod requires one of the two.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from collections.abc import Iterator

import msgspec
from prometheus_client import start_http_server
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.auth import bearer_token
from core.config import Settings
from core.context import runtime
from core.errors import NotFound, Unauthorized
from core.http import JSONResponse, endpoint
from core.metrics import CONTENT_TYPE, Metrics

_CHECK_TIMEOUT_S = 2.0


class Health(msgspec.Struct):
    status: str
    checks: dict[str, str] = {}


@endpoint("Process is alive", tags=("ops",), responses={200: Health})
async def healthz(request: Request) -> Response:
    return JSONResponse(Health("ok"))


async def _check(awaitable: object) -> str:
    try:
        async with asyncio.timeout(_CHECK_TIMEOUT_S):  # not wait_for: see core/outbox.py
            await awaitable  # type: ignore[misc]
    except Exception as exc:  # any failure means "not ready"; say which kind
        return f"error: {type(exc).__name__}"
    return "ok"


@endpoint("PostgreSQL and Redis are reachable", tags=("ops",), responses={200: Health, 503: Health})
async def readyz(request: Request) -> Response:
    rt = runtime(request)
    postgres, redis = await asyncio.gather(
        _check(rt.pool.fetchval("SELECT 1")), _check(rt.redis.ping())
    )
    ok = postgres == "ok" and redis == "ok"
    body = Health("ok" if ok else "unavailable", {"postgres": postgres, "redis": redis})
    return JSONResponse(body, status_code=200 if ok else 503)


@endpoint("Prometheus metrics (METRICS_TOKEN as a Bearer token when set)", tags=("ops",),
          responses={200: None}, errors=(401, 404))
async def metrics(request: Request) -> Response:
    settings = runtime(request).settings
    if settings.metrics_port:
        raise NotFound("Metrics are served on their own listener.")
    if settings.metrics_token is not None:
        token = bearer_token(request.headers.get("authorization")) or ""
        if not hmac.compare_digest(token.encode(), settings.metrics_token.encode()):
            raise Unauthorized("Metrics need the operator's token.")
    return Response(runtime(request).metrics.render(), media_type=CONTENT_TYPE)


@contextlib.contextmanager
def serve_metrics(settings: Settings, metrics: Metrics) -> Iterator[None]:
    """With METRICS_PORT: serve the registry on its own listener (prometheus-client's, in a
    thread) for the block. Raises OSError when the port is taken (one port per process)."""
    if not settings.metrics_port:
        yield
        return
    server, thread = start_http_server(settings.metrics_port, addr=settings.metrics_host,
                                       registry=metrics.registry)
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)



routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
