"""Malformed frames, unknown ops, oversize frames and floods, against a real server: each gets
a clear error or close, and everyone else keeps being served."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import msgpack
import orjson
import pytest
from websockets.exceptions import ConnectionClosed

from testkit.servers import ServerProcess
from tests.conftest import Register
from tests.realtime.helpers import admin_publish
from tests.realtime.wsclient import WsClient


async def test_bad_input_gets_errors_or_closes_and_others_keep_service(
    servers: Callable[..., ServerProcess], register: Register
) -> None:
    server = servers(WS_COMMAND_RATE="5", WS_COMMAND_BURST="20", WS_MAX_FRAME_BYTES="4096",
                     WS_MAX_SUBSCRIPTIONS="3")
    admin = await register("admin")
    channel = f"auction:{uuid.uuid4()}"
    bystander = await WsClient.open(server.ws_url)
    await bystander.call("subscribe", channel=channel)

    bad = await WsClient.open(server.ws_url)
    for frame in ("not json", "[1, 2]", '{"op": "ping"}', '{"id": "x", "op": "ping"}'):
        await bad.send_raw(frame)
        err = await bad.next_error()
        assert err["error"]["code"] == "malformed_frame"
        assert err["error"]["temporary"] is False
    await bad.send_raw(b"\x01\x02")  # binary frame on the JSON subprotocol
    assert (await bad.next_error())["error"]["code"] == "malformed_frame"
    r = await bad.call("dance")
    assert r["error"]["code"] == "unknown_op"
    r = await bad.call("subscribe", channel="auction:NOT-A-UUID")
    assert r["error"]["code"] == "bad_channel"
    r = await bad.call("subscribe", channel=channel, since={"epoch": 5})
    assert r["error"]["code"] == "malformed_frame"
    await bad.close()

    greedy = await WsClient.open(server.ws_url)
    for _ in range(3):
        assert "result" in await greedy.call("subscribe", channel=f"show:{uuid.uuid4()}")
    r = await greedy.call("subscribe", channel=f"show:{uuid.uuid4()}")
    assert r["error"]["code"] == "too_many_subscriptions"
    await greedy.close()

    big = await WsClient.open(server.ws_url)
    await big.send_raw(orjson.dumps({"id": 1, "op": "ping", "pad": "x" * 5000}).decode())
    assert await big.until_closed() == 1009

    flood = await WsClient.open(server.ws_url, binary=True)
    for i in range(80):
        await flood.send_raw(msgpack.packb({"id": i, "op": "ping"}))
    assert await flood.until_closed() == 4029
    limited = [r for r in flood.replies.values() if "error" in r]
    assert limited
    assert all(r["error"]["code"] == "rate_limited" for r in limited)
    assert all(r["error"]["temporary"] is True for r in limited)

    out = admin_publish(server, admin.access_token, channel, {"still": "here"})
    [pub] = await bystander.publications(1)
    assert pub == {"channel": channel, "offset": out["offset"], "data": {"still": "here"}}
    assert (await bystander.call("ping"))["result"] == {}
    await bystander.close()


async def test_unknown_subprotocol_is_refused(servers: Callable[..., ServerProcess]) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus, NegotiationError

    server = servers()
    with pytest.raises((InvalidStatus, NegotiationError, ConnectionClosed)):
        async with connect(server.ws_url + "/v1/ws", subprotocols=["chat.v9"]) as ws:  # type: ignore[list-item]
            await ws.recv()
