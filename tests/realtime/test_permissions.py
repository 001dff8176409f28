"""Channel permissions for every kind, over a real server."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx

from testkit.servers import ServerProcess
from tests.conftest import Register
from tests.realtime.wsclient import WsClient


async def _code(client: WsClient, channel: str) -> str:
    r = await client.call("subscribe", channel=channel)
    return "ok" if "result" in r else str(r["error"]["code"])


async def test_subscribe_permissions_per_kind(
    servers: Callable[..., ServerProcess], register: Register, client: httpx.AsyncClient
) -> None:
    server = servers()
    buyer, other, admin = await register("buyer"), await register("seller"), await register("admin")
    r = await client.post("/v1/shows", json={"title": "Perms"}, headers=other.headers)
    some = uuid.UUID(r.json()["id"])  # a real show: its chat needs one
    anonymous = await WsClient.open(server.ws_url)
    by_header = await WsClient.open(server.ws_url, token=buyer.access_token)
    by_op = await WsClient.open(server.ws_url)
    r = await by_op.call("auth", token=other.access_token)
    assert r["result"] == {"user_id": other.id, "role": "seller"}
    boss = await WsClient.open(server.ws_url, token=admin.access_token)

    expected = {
        f"auction:{some}": ("ok", "ok", "ok", "ok"),
        f"show:{some}": ("ok", "ok", "ok", "ok"),
        f"show:{some}:chat": ("ok", "ok", "ok", "ok"),
        f"order:{some}": ("forbidden", "forbidden", "forbidden", "ok"),
        f"user:{buyer.id}": ("forbidden", "ok", "forbidden", "forbidden"),
        f"user:{other.id}": ("forbidden", "forbidden", "ok", "forbidden"),
        "admin": ("forbidden", "forbidden", "forbidden", "ok"),
    }
    for channel, codes in expected.items():
        got = tuple([await _code(c, channel) for c in (anonymous, by_header, by_op, boss)])
        assert got == codes, channel

    r = await anonymous.call("subscribe", channel=f"show:{uuid.uuid4()}:chat")
    assert r["error"]["code"] == "not_found"
    # Publishing: only chat for signed-in users, anything for admins.
    r = await anonymous.call("publish", channel=f"auction:{some}", data={"x": 1})
    assert r["error"]["code"] == "unauthorized"
    r = await by_header.call("publish", channel=f"auction:{some}", data={"x": 1})
    assert r["error"]["code"] == "forbidden"
    r = await by_header.call("publish", channel=f"user:{buyer.id}", data={"x": 1})
    assert r["error"]["code"] == "forbidden"
    r = await boss.call("publish", channel=f"auction:{some}", data={"x": 1})
    assert r["result"]["offset"] == 1
    # Auth only once, and not after subscribing.
    r = await by_op.call("auth", token=buyer.access_token)
    assert r["error"]["code"] == "already_authenticated"
    for c in (anonymous, by_header, by_op, boss):
        await c.close()


async def test_bad_tokens_close_with_4501(
    servers: Callable[..., ServerProcess], register: Register
) -> None:
    server = servers()
    for token in ("not-a-jwt", None):
        client = await WsClient.open(server.ws_url, token=token)
        if token is None:
            r = await client.call("auth", token="garbage.token.here")
            assert r["error"]["code"] == "token_invalid"
        assert await client.until_closed() == 4501
