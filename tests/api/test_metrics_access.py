"""/metrics is not public when the operator says so (issue 17, finding 5): a token, or its own
listener; production refuses to start with neither."""

from __future__ import annotations

from dataclasses import replace

import httpx
import pytest

from api.app import create_app
from core.config import Settings, SettingsError
from tests.support.lifespan import started
from tests.support.servers import free_port

TOKEN = "metrics-token-0123456789"


async def _get(settings: Settings, path: str, **headers: str) -> httpx.Response:
    app = create_app(settings)
    async with started(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://souk.test") as c:
            return await c.get(path, headers=headers)


async def test_metrics_behind_a_token(settings: Settings) -> None:
    s = replace(settings, metrics_token=TOKEN)
    assert (await _get(s, "/metrics")).status_code == 401
    assert (await _get(s, "/metrics", Authorization="Bearer wrong-token")).status_code == 401
    r = await _get(s, "/metrics", Authorization=f"Bearer {TOKEN}")
    assert r.status_code == 200
    assert "souk_http_requests_total" in r.text


async def test_metrics_on_their_own_listener(settings: Settings) -> None:
    port = free_port()
    app = create_app(replace(settings, metrics_port=port))
    async with started(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://souk.test") as c:
            assert (await c.get("/metrics")).status_code == 404
        async with httpx.AsyncClient() as direct:
            r = await direct.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        assert r.status_code == 200
        assert "souk_ledger" in r.text or "souk_http" in r.text
    async with httpx.AsyncClient() as direct:
        with pytest.raises(httpx.ConnectError):  # closed with the app
            await direct.get(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_production_needs_a_token_or_a_port() -> None:
    base = {"DATABASE_URL": "postgresql://db/x", "REDIS_URL": "redis://r:6379/0",
            "SOUK_ENV": "prod"}
    with pytest.raises(SettingsError, match="METRICS_TOKEN or METRICS_PORT"):
        Settings.from_env(base)
    assert Settings.from_env({**base, "METRICS_TOKEN": TOKEN}).metrics_token == TOKEN
    assert Settings.from_env({**base, "METRICS_PORT": "9100"}).metrics_port == 9100
    assert "metrics-token" not in repr(Settings.from_env({**base, "METRICS_TOKEN": TOKEN}))
