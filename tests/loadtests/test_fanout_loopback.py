"""The generator end to end over real loopback sockets: against the blaster (no Redis) and the
websockets baseline fed by real Redis. Small and fast; no timing assertions."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from websockets.asyncio.server import serve

from loadtests.fanout import baseline_websockets as bw
from loadtests.fanout import blaster
from loadtests.fanout import wsframes as wf
from loadtests.fanout.client import SUBPROTOCOL, Commander, Endpoint, Fleet
from loadtests.fanout.publishers import RedisPublisher, WsPublisher, make_payload
from loadtests.fanout.stats import Recorder, Summary
from testkit.waiting import eventually

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


async def wait_for(fleet: Fleet, count: int) -> None:
    await eventually(lambda: all(t.received >= count for t in fleet.trackers), 5.0, step=0.01,
                     what=f"every client receiving {count} frames")


def test_blaster_client_frames_roundtrip() -> None:
    frames = blaster.ClientFrames()
    a = wf.client_frame(wf.OP_TEXT, b'{"id":1}')
    b = wf.client_frame(wf.OP_TEXT, b"x" * 300)
    assert frames.feed(a + b[:5]) == [(wf.OP_TEXT, b'{"id":1}')]
    assert frames.feed(b[5:]) == [(wf.OP_TEXT, b"x" * 300)]


@pytest.fixture
async def blaster_url() -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    server = blaster.Server("array")
    srv = await loop.create_server(lambda: blaster.Conn(server), "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    yield f"ws://127.0.0.1:{port}/"
    srv.close()


async def test_fleet_receives_batched_publications_from_blaster(blaster_url: str) -> None:
    rec = Recorder()
    fleet = Fleet([Endpoint(blaster_url)], "show:t:chat", rec)
    await fleet.open(20, concurrency=5)
    pub = WsPublisher(Endpoint(blaster_url), "show:t:chat")
    await pub.start()
    await pub.publish([make_payload(i, 1) for i in range(5)])
    await pub.publish([make_payload(5, 1)])
    assert await pub.finish(timeout_s=5) == (6, 0)
    await wait_for(fleet, 6)
    summary = Summary.of(fleet.trackers, 6)
    fleet.close()
    await pub.close()
    assert (summary.delivered, summary.missing, summary.gaps, summary.reorders) == (120, 0, 0, 0)
    assert rec.delivered == 120
    assert sum(rec.hist.values()) == 120


async def test_ws_publisher_counts_refusals(blaster_url: str) -> None:
    pub = WsPublisher(Endpoint(blaster_url), "c")
    await pub.start()
    assert pub._writer is not None
    pub._pending[7] = 0.0
    pub._idle.clear()
    pub._writer.write(wf.client_frame(wf.OP_TEXT, b'{"id":7,"op":"nope"}'))
    assert await pub.finish(timeout_s=5) == (0, 1)
    assert b"unknown_op" in pub.errors[0]
    await pub.close()


async def test_websockets_baseline_over_real_redis() -> None:
    prefix = f"test:fanout:{uuid.uuid4().hex[:8]}:"
    redis = aioredis.Redis.from_url(REDIS_URL)
    hub = bw.Hub(redis, prefix)
    pump = asyncio.create_task(hub.pump())
    async with serve(bw.make_handler(hub), "127.0.0.1", 0, subprotocols=[bw.SUBPROTOCOL],  # type: ignore[list-item]
                     compression=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        rec = Recorder()
        fleet = Fleet([Endpoint(f"ws://127.0.0.1:{port}/")], "auction:a", rec)
        await fleet.open(10, concurrency=10)
        pub = RedisPublisher(REDIS_URL, prefix + "auction:a")
        await pub.start()
        async def subscribed() -> bool:  # the hub's SUBSCRIBE reaches Redis asynchronously
            return bool((await redis.pubsub_numsub(prefix + "auction:a"))[0][1] == 1)

        await eventually(subscribed, 5.0, step=0.01)
        for i in range(4):
            await pub.publish([make_payload(i, 1), make_payload(i, 1)])
        await wait_for(fleet, 8)
        summary = Summary.of(fleet.trackers, 8)
        fleet.close()
        await pub.close()
    pump.cancel()
    await redis.aclose()
    assert (summary.delivered, summary.missing, summary.gaps, summary.reorders) == (80, 0, 0, 0)
    assert {t.first for t in fleet.trackers} == {1}


def test_endpoint_refuses_non_loopback() -> None:
    with pytest.raises(ValueError, match="loopback"):
        Endpoint("ws://example.com/v1/ws")
    with pytest.raises(ValueError):
        Endpoint("http://127.0.0.1/")


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return False

    def abort(self) -> None:
        return None


def _unmasked(frame: bytes) -> bytes:
    return wf.mask(frame[6:], frame[2:6])


async def test_socketio_subscriber_handshake_and_publications() -> None:
    from loadtests.fanout.client import SocketIOSubscriber

    rec = Recorder()
    fleet = Fleet([Endpoint("ws://127.0.0.1:1/socket.io/?EIO=4&transport=websocket")], "auction:a",
                  rec, kind=SocketIOSubscriber)
    sub = SocketIOSubscriber(fleet, fleet.endpoints[0])
    fake = FakeTransport()
    sub.transport = fake  # type: ignore[assignment]
    sub.parser = wf.FrameParser()
    steps = [b'0{"sid":"x","pingInterval":25000}', b'40{"sid":"y"}', b'430[{"epoch":"e"}]', b"2"]
    sub.data_received(b"".join(wf.server_frame(wf.OP_TEXT, p) for p in steps))
    assert [_unmasked(w) for w in fake.written] == [
        b"40", b'420["subscribe",{"channel":"auction:a"}]', b"3"]
    assert sub.subscribed.result() == b'[{"epoch":"e"}]'
    pub = b'42["pub",{"channel":"auction:a","offset":1,"data":' + make_payload(0, 5) + b"}]"
    sub.data_received(wf.server_frame(wf.OP_TEXT, pub))
    assert (sub.tracker.received, rec.delivered) == (1, 1)


async def test_http_publisher_keepalive_posts_and_refusals() -> None:
    from loadtests.fanout.publishers import HttpPublisher

    seen: list[bytes] = []

    async def serve_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                break
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            body = await reader.readexactly(length)
            seen.append(head.split(b"\r\n")[0] + b" " + body)
            status = b"201 Created" if len(seen) % 2 else b"403 Forbidden"
            writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 2\r\n\r\n{}")
        writer.close()

    server = await asyncio.start_server(serve_http, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pub = HttpPublisher(f"http://127.0.0.1:{port}/v1/admin/channels/{{channel}}/publications",
                        "auction:a", body='{"data":{data}}', headers={"Authorization": "Bearer t"},
                        connections=1)
    await pub.start()
    await pub.publish([b'{"ts":1}', b'{"ts":2}', b'{"ts":3}'])
    assert await pub.finish(timeout_s=5) == (2, 1)
    await pub.close()
    server.close()
    assert seen[0] == b'POST /v1/admin/channels/auction:a/publications HTTP/1.1 {"data":{"ts":1}}'
    assert pub.errors == [b"403 {}"]


async def test_commander_matches_replies_to_requests_and_fails_them_on_close() -> None:
    """The bid benchmark's client: each `request` gets the reply carrying its id, also when
    replies come out of order, several to a frame, between publications; when the server goes
    away, what is still waiting fails."""
    seen_headers: list[str | None] = []

    async def handler(ws: Any) -> None:
        seen_headers.append(ws.request.headers.get("Authorization"))
        first = json.loads(await ws.recv())
        second = json.loads(await ws.recv())
        await ws.send('{"channel":"auction:x","offset":1,"data":{}}')
        # the second is answered before the first, in one frame with the first
        await ws.send(json.dumps({"id": second["id"], "result": {"echo": second["op"]}})
                      + "\n" + json.dumps({"id": first["id"], "error": {"code": "nope"}}))
        await ws.recv()  # the third is never answered: the server closes
        await ws.close()

    async with serve(handler, "127.0.0.1", 0, subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
                     compression=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        conn = await Commander.connect(Endpoint(f"ws://127.0.0.1:{port}/",
                                                headers={"Authorization": "Bearer t"}))
        one = asyncio.ensure_future(conn.request({"op": "first"}))
        two = asyncio.ensure_future(conn.request({"op": "second"}))
        assert await two == {"id": 2, "result": {"echo": "second"}}
        assert await one == {"id": 1, "error": {"code": "nope"}}
        with pytest.raises(ConnectionError):
            await conn.request({"op": "third"})
        assert seen_headers == ["Bearer t"]
