"""The smaller findings of issue 17 (finding 6): top-up currencies, security headers on token
responses, CORS and the websocket Origin check, authentication before the body."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from api.app import create_app
from core.config import Settings
from tests.conftest import Register
from tests.realtime.wsclient import WsClient
from tests.support.lifespan import started
from tests.support.servers import ServerProcess

SHOP = "https://shop.example"


async def test_topups_accept_only_configured_currencies(
    client: httpx.AsyncClient, register: Register
) -> None:
    buyer = await register()
    r = await client.post("/v1/wallet/topups", json={"amount": 100, "currency": "ZZZ"},
                          headers=buyer.headers)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "currency"
    r = await client.get("/v1/wallet", params={"currency": "ZZZ"}, headers=buyer.headers)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "currency"
    r = await client.get("/v1/wallet", params={"currency": "USD"}, headers=buyer.headers)
    assert r.json()["available"] == 0  # the refused top-up credited nothing
    r = await client.post("/v1/wallet/topups", json={"amount": 100, "currency": "USD"},
                          headers=buyer.headers)
    assert r.status_code == 201, r.text
    assert r.json()["wallet"] == {"currency": "USD", "available": 100, "held": 0}


async def test_token_responses_are_never_cached_or_sniffed(
    client: httpx.AsyncClient, register: Register
) -> None:
    buyer = await register()
    responses = [
        await client.post("/v1/auth/login", json={"email": buyer.email,
                                                  "password": buyer.password}),
        await client.post("/v1/auth/refresh", json={"refresh_token": buyer.refresh_token}),
        await client.post("/v1/auth/register", json={
            "email": f"h{uuid.uuid4().hex[:8]}@example.com", "password": "correct horse battery",
            "display_name": "H"}),
        await client.get("/v1/nope"),
    ]
    for r in responses:
        assert r.headers["x-content-type-options"] == "nosniff", r.url
        assert r.headers["cache-control"] == "no-store", r.url
    assert "access_token" in responses[0].json()


async def test_cors_answers_preflights_for_allowed_origins_only(settings: Settings) -> None:
    for origins, origin, allowed in (((SHOP,), SHOP, True), ((SHOP,), "https://evil.example",
                                                             False), ((), SHOP, False)):
        app = create_app(replace(settings, cors_origins=origins))
        async with started(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://souk.test") as c:
                r = await c.options("/v1/products", headers={
                    "Origin": origin, "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "authorization,content-type"})
                simple = await c.get("/v1/products", headers={"Origin": origin})
        if allowed:
            assert r.status_code == 200, r.text
            assert r.headers["access-control-allow-origin"] == origin
            assert "POST" in r.headers["access-control-allow-methods"]
            assert simple.headers["access-control-allow-origin"] == origin
        else:
            assert r.status_code == 400
            assert "access-control-allow-origin" not in r.headers
            assert "access-control-allow-origin" not in simple.headers


async def test_websocket_origin_allow_list(servers: Callable[..., ServerProcess]) -> None:
    server = servers(WS_ORIGINS=SHOP)
    with pytest.raises(InvalidStatus) as refused:
        await WsClient.open(server.ws_url, origin="https://evil.example")
    assert refused.value.response.status_code == 403
    for kw in ({"origin": SHOP}, {}):  # the shop's pages, and clients that are not browsers
        ws = await WsClient.open(server.ws_url, **kw)
        assert "result" in await ws.call("ping")
        await ws.close()


async def test_order_transitions_authenticate_before_reading_the_body(
    client: httpx.AsyncClient,
) -> None:
    for path in ("transitions", "cancel"):
        r = await client.post(f"/v1/orders/{uuid.uuid4()}/{path}", json={"to": 12})
        assert r.status_code == 401, (path, r.text)
