"""Open websockets obey revocation (issue 17, finding 1), over real server processes, real
Redis and real websocket clients: suspension, logout and a refresh-token family revoked for
reuse close live connections on every process at once; an expired token closes with 4005."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from core.auth import Role
from core.context import Runtime
from realtime.revocation import CLOSE_REVOKED, CLOSE_TOKEN_EXPIRED
from tests.conftest import TIMING_FACTOR, Register
from tests.realtime.wsclient import WsClient
from tests.support.servers import ServerProcess

pytestmark = pytest.mark.integration

# Without the announcement, the re-check (every WS_REVOCATION_RECHECK_S) would still close
# them: the default (30 s) is far above the wait below, so these tests prove the announcement.
CUT_WITHIN_S = 5.0 * TIMING_FACTOR


class _http:  # one short-lived client per call (each test has its own loop)
    @staticmethod
    async def post(url: str, **kw: Any) -> httpx.Response:
        async with httpx.AsyncClient() as c:
            return await c.post(url, **kw)

    @staticmethod
    async def get(url: str, **kw: Any) -> httpx.Response:
        async with httpx.AsyncClient() as c:
            return await c.get(url, **kw)


async def _signed_in(server: ServerProcess, token: str) -> WsClient:
    ws = await WsClient.open(server.ws_url, token=token)
    assert "result" in await ws.call("ping")
    return ws


async def test_suspension_closes_the_users_connections_on_every_process(
    servers: Callable[..., ServerProcess], register: Register
) -> None:
    a, b = servers(), servers()
    admin, buyer, other = await register("admin"), await register("buyer"), await register()
    on_a, on_b = await _signed_in(a, buyer.access_token), await _signed_in(b, buyer.access_token)
    bystander = await _signed_in(b, other.access_token)
    r = await _http.post(f"{a.url}/v1/admin/users/{buyer.id}/suspend", json={"reason": "fraud"},
                   headers=admin.headers, )
    assert r.status_code == 204, r.text
    started = time.monotonic()
    assert await on_a.until_closed(CUT_WITHIN_S) == CLOSE_REVOKED
    assert await on_b.until_closed(CUT_WITHIN_S) == CLOSE_REVOKED
    assert time.monotonic() - started < CUT_WITHIN_S
    assert "result" in await bystander.call("ping")  # other users are untouched
    await bystander.close()


async def test_logout_closes_the_connections_of_that_token_only(
    servers: Callable[..., ServerProcess], register: Register
) -> None:
    a, b = servers(), servers()
    buyer = await register()
    r = await _http.post(f"{a.url}/v1/auth/login",
                   json={"email": buyer.email, "password": buyer.password}, )
    second_token = r.json()["access_token"]  # another sign-in of the same user
    ws = await _signed_in(b, buyer.access_token)
    # the first `auth` op path, not the upgrade header
    via_op = await WsClient.open(b.ws_url)
    assert "result" in await via_op.call("auth", token=buyer.access_token)
    other_session = await _signed_in(b, second_token)
    r = await _http.post(f"{a.url}/v1/auth/logout", headers=buyer.headers, )
    assert r.status_code == 204
    assert await ws.until_closed(CUT_WITHIN_S) == CLOSE_REVOKED
    assert await via_op.until_closed(CUT_WITHIN_S) == CLOSE_REVOKED
    assert "result" in await other_session.call("ping")
    await other_session.close()


async def test_reuse_of_a_refresh_token_revokes_the_familys_access_tokens(
    servers: Callable[..., ServerProcess], register: Register
) -> None:
    a, b = servers(), servers()
    buyer = await register()
    r = await _http.post(f"{a.url}/v1/auth/refresh", json={"refresh_token": buyer.refresh_token},
                   )
    assert r.status_code == 200
    rotated = r.json()["access_token"]
    ws = await _signed_in(b, rotated)
    old_ws = await _signed_in(b, buyer.access_token)
    # The old refresh token again: reuse, the whole family is revoked ...
    r = await _http.post(f"{a.url}/v1/auth/refresh", json={"refresh_token": buyer.refresh_token},
                   )
    assert r.json()["code"] == "refresh_token_reused"
    # ... and with it every access token it issued, over REST and on live connections.
    for token in (rotated, buyer.access_token):
        r = await _http.get(f"{b.url}/v1/me", headers={"Authorization": f"Bearer {token}"},
                      )
        assert r.status_code == 401, r.text
    assert await ws.until_closed(CUT_WITHIN_S) == CLOSE_REVOKED
    assert await old_ws.until_closed(CUT_WITHIN_S) == CLOSE_REVOKED


async def test_an_expired_token_closes_its_connection_with_4005(
    servers: Callable[..., ServerProcess], register: Register, rt: Runtime
) -> None:
    server = servers()
    buyer = await register()
    ttl = rt.settings.access_token_ttl_s
    lives_s = 2.0 * TIMING_FACTOR
    # issued long enough ago that it expires `lives_s` from now
    token = rt.tokens.issue(uuid.UUID(buyer.id), Role.BUYER, now=time.time() - ttl + lives_s)
    ws = await _signed_in(server, token)
    started = time.monotonic()
    assert await ws.until_closed(lives_s + CUT_WITHIN_S) == CLOSE_TOKEN_EXPIRED
    assert time.monotonic() - started >= lives_s - 1.0


async def test_a_missed_announcement_is_caught_by_the_recheck(
    servers: Callable[..., ServerProcess], register: Register, rt: Runtime
) -> None:
    server = servers(WS_REVOCATION_RECHECK_S="1")
    buyer = await register()
    ws = await _signed_in(server, buyer.access_token)
    # Suspended behind the hub's back: the key only, no announcement.
    await rt.redis.set(rt.suspended_key(buyer.id), b"1", ex=60)
    assert await ws.until_closed(CUT_WITHIN_S) == CLOSE_REVOKED
