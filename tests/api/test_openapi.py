"""The OpenAPI document covers every route, and /metrics speaks Prometheus."""

from __future__ import annotations

import re

import httpx
from starlette.applications import Starlette
from starlette.routing import Route

from core.http import endpoint_spec


async def test_every_route_is_documented(app: Starlette, client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    assert doc["openapi"].startswith("3.1")
    for route in app.routes:
        if isinstance(route, Route):
            assert endpoint_spec(route.endpoint) is not None, f"{route.path} lacks @endpoint"
            path = re.sub(r"{(\w+):\w+}", r"{\1}", route.path)
            assert path in doc["paths"], path
            for method in (route.methods or set()) - {"HEAD"}:
                assert method.lower() in doc["paths"][path]
    login = doc["paths"]["/v1/auth/login"]["post"]
    schema_ref = login["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    name = schema_ref.rsplit("/", 1)[-1]
    assert set(doc["components"]["schemas"][name]["required"]) == {"email", "password"}
    assert "429" in login["responses"]


async def test_metrics_endpoint(client: httpx.AsyncClient) -> None:
    await client.get("/healthz")
    await client.get("/v1/does-not-exist")
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'souk_http_requests_total{method="GET",route="/healthz",status="2xx"}' in text
    assert 'route="unmatched",status="4xx"' in text  # ids never become labels
    assert "souk_http_request_duration_seconds_bucket" in text


async def test_health_and_ready(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok", "checks": {}}
    r = await client.get("/readyz")
    assert r.status_code == 200
    assert r.json()["checks"] == {"postgres": "ok", "redis": "ok"}


async def test_ready_fails_when_redis_goes_down(settings, private_redis) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from api.app import create_app
    from tests.support.lifespan import started

    app = create_app(replace(settings, redis_url=private_redis.url))
    async with started(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            assert (await c.get("/readyz")).status_code == 200
            private_redis.kill()
            r = await c.get("/readyz")
            assert r.status_code == 503
            checks = r.json()["checks"]
            assert checks["postgres"] == "ok"
            assert checks["redis"].startswith("error")
            assert (await c.get("/healthz")).status_code == 200
