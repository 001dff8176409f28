"""The hub over real uvicorn processes and real Redis."""

from __future__ import annotations

import asyncio
import signal
import socket
import uuid
from collections.abc import Callable

import pytest

from core.context import Runtime
from testkit.servers import ServerProcess
from tests.conftest import Register
from tests.realtime.helpers import admin_publish, metric, metrics_text, pipelined_publish
from tests.realtime.wsclient import WsClient

FAST_COMMANDS = {"WS_COMMAND_RATE": "100000", "WS_COMMAND_BURST": "100000"}


async def test_publication_on_one_process_reaches_the_other_in_order(
    servers: Callable[..., ServerProcess], register: Register
) -> None:
    a, b = servers(), servers()
    admin = await register("admin")
    channel = f"auction:{uuid.uuid4()}"
    json_sub = await WsClient.open(b.ws_url)
    mp_sub = await WsClient.open(b.ws_url, binary=True)
    try:
        for sub in (json_sub, mp_sub):
            r = await sub.call("subscribe", channel=channel)
            assert r["result"]["offset"] == 0
            assert r["result"]["publications"] == []
        epoch = r["result"]["epoch"]
        for i in range(40):
            out = admin_publish(a, admin.access_token, channel, {"n": i})
            assert out == {"epoch": epoch, "offset": i + 1}
        for sub in (json_sub, mp_sub):
            pubs = await sub.publications(40)
            assert [p["offset"] for p in pubs] == list(range(1, 41))
            assert [p["data"]["n"] for p in pubs] == list(range(40))
            assert {p["channel"] for p in pubs} == {channel}
    finally:
        await json_sub.close()
        await mp_sub.close()


async def test_reconnect_with_since_gets_exactly_what_was_missed(
    servers: Callable[..., ServerProcess], register: Register
) -> None:
    a, b = servers(), servers(REALTIME_RECOVER_MAX="15")
    admin = await register("admin")
    channel = f"auction:{uuid.uuid4()}"
    sub = await WsClient.open(b.ws_url)
    r = await sub.call("subscribe", channel=channel)
    epoch = r["result"]["epoch"]
    for i in range(10):
        admin_publish(a, admin.access_token, channel, {"n": i})
    seen = await sub.publications(10)
    await sub.close()
    for i in range(10, 22):
        admin_publish(a, admin.access_token, channel, {"n": i})

    again = await WsClient.open(b.ws_url)
    r = await again.call("subscribe", channel=channel,
                         since={"epoch": epoch, "offset": seen[-1]["offset"]})
    result = r["result"]
    assert result["recovered"] is True
    assert (result["epoch"], result["offset"]) == (epoch, 22)
    assert [p["offset"] for p in result["publications"]] == list(range(11, 23))
    assert [p["data"]["n"] for p in result["publications"]] == list(range(10, 22))
    admin_publish(a, admin.access_token, channel, {"n": 22})
    [live] = await again.publications(1)
    assert live["offset"] == 23
    await again.close()

    # Too far behind (more than REALTIME_RECOVER_MAX) or another epoch: recovered false.
    for since in ({"epoch": epoch, "offset": 2}, {"epoch": "otherepoch", "offset": 20}):
        c = await WsClient.open(b.ws_url)
        r = await c.call("subscribe", channel=channel, since=since)
        assert r["result"]["recovered"] is False
        assert r["result"]["publications"] == []
        assert (r["result"]["epoch"], r["result"]["offset"]) == (epoch, 23)
        await c.close()


async def test_slow_client_is_closed_with_4008_and_others_get_everything(
    servers: Callable[..., ServerProcess], register: Register
) -> None:
    server = servers(WS_OUTBOX_MAX_BYTES="65536", **FAST_COMMANDS)
    admin = await register("admin")
    channel = f"auction:{uuid.uuid4()}"
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    slow = await WsClient.open(server.ws_url, sock=sock, max_queue=1)
    await slow.call("subscribe", channel=channel)
    fast = [await WsClient.open(server.ws_url) for _ in range(3)]
    for f in fast:
        await f.call("subscribe", channel=channel)
    publisher = await WsClient.open(server.ws_url, token=admin.access_token)
    total = 1200
    blob = "x" * 8000
    readers = [asyncio.ensure_future(f.publications(total, wait_s=60)) for f in fast]
    replies = await pipelined_publish(publisher, channel, [{"n": i, "blob": blob}
                                                           for i in range(total)])
    assert all("result" in r for r in replies)
    for pubs in await asyncio.gather(*readers):
        assert [p["offset"] for p in pubs] == list(range(1, total + 1))
    assert metric(server, "souk_ws_slow_disconnects_total") == 1
    assert await slow.until_closed(wait_s=30) == 4008
    for c in (*fast, publisher):
        r = await c.call("ping")
        assert r == {"id": r["id"], "result": {}}
        await c.close()


async def test_sigterm_drains_clients_with_4000(
    servers: Callable[..., ServerProcess]
) -> None:
    server = servers(WS_DRAIN_S="2")
    clients = [await WsClient.open(server.ws_url) for _ in range(3)]
    for c in clients:
        await c.call("subscribe", channel=f"auction:{uuid.uuid4()}")
    assert server.proc is not None
    server.proc.terminate()
    for c in clients:
        assert await c.until_closed() == 4000
    # uvicorn re-raises the signal once it has shut down cleanly
    assert await asyncio.to_thread(server.proc.wait, 30) in (0, -signal.SIGTERM)


async def test_sharded_pubsub_setting(
    servers: Callable[..., ServerProcess], register: Register
) -> None:
    a, b = servers(REALTIME_SHARDED_PUBSUB="true"), servers(REALTIME_SHARDED_PUBSUB="true")
    admin = await register("admin")
    channel = f"auction:{uuid.uuid4()}"
    sub = await WsClient.open(b.ws_url, binary=True)
    await sub.call("subscribe", channel=channel)
    for i in range(5):
        admin_publish(a, admin.access_token, channel, {"n": i})
    pubs = await sub.publications(5)
    assert [p["offset"] for p in pubs] == [1, 2, 3, 4, 5]
    await sub.close()


async def test_connection_limit_and_metrics(
    servers: Callable[..., ServerProcess], register: Register
) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    server = servers(WS_MAX_CONNECTIONS="2")
    admin = await register("admin")
    channel = f"show:{uuid.uuid4()}"
    first, second = await WsClient.open(server.ws_url), await WsClient.open(server.ws_url)
    with pytest.raises(InvalidStatus) as refused:
        await connect(server.ws_url + "/v1/ws",
                      subprotocols=["souk.v1.json"])  # type: ignore[list-item]
    assert refused.value.response.status_code == 503
    await first.call("subscribe", channel=channel)
    admin_publish(server, admin.access_token, channel, {"n": 1})
    await first.publications(1)
    text = metrics_text(server)
    for name in ("souk_ws_connections 2.0", 'souk_ws_subscriptions{kind="show"} 1.0',
                 'souk_ws_publications_in_total{kind="show"}',
                 'souk_ws_publications_out_total{kind="show"}', "souk_ws_bytes_out_total",
                 "souk_ws_fanout_duration_seconds_bucket", "souk_ws_pubsub_lag_seconds_bucket",
                 "souk_ws_slow_disconnects_total", "souk_ws_outbox_drops_total",
                 'souk_ws_connects_total{outcome="refused"} 1.0'):
        assert name in text, name
    assert channel not in text  # labels carry kinds, never ids
    await first.close()
    await second.close()


async def test_outbox_events_are_published_on_their_channels(
    servers: Callable[..., ServerProcess], register: Register, rt: Runtime
) -> None:
    from core.db import transaction
    from core.outbox import add_event

    server = servers()
    buyer = await register("buyer")
    sub = await WsClient.open(server.ws_url, token=buyer.access_token)
    mine = f"user:{buyer.id}"
    await sub.call("subscribe", channel=mine)
    order = f"order:{uuid.uuid4()}"
    async with transaction(rt.pool) as conn:
        await add_event(conn, "order.paid", {"type": "order", "state": "paid"},
                        channels=[order, mine, "not a channel"])
    [pub] = await sub.publications(1, wait_s=30)
    assert pub == {"channel": mine, "offset": 1, "data": {"type": "order", "state": "paid"}}
    await sub.close()
