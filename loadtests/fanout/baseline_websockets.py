"""Baseline for the fan-out benchmark: a bare `websockets` server with `broadcast()` fed from
Redis pub/sub, speaking the minimal subset of the souk.v1.json protocol the generator uses.

- `{"id", "op": "subscribe", "channel"}` -> `{"id", "result": {"epoch", "offset", ...}}`; the
  first local subscriber of a channel subscribes the process to the Redis channel
  `<prefix><channel>`, the last one leaving unsubscribes;
- each Redis message on that channel becomes the publication
  `{"channel", "offset", "data": <message>}` with an in-process gapless offset, encoded once and
  sent with `websockets.broadcast()` (one frame per publication per connection, no batching);
- `{"id", "op": "ping"}` -> `{"id", "result": {}}`; anything else -> an error reply.

Compression is off (as in the hub) so the same frame bytes go to every connection.

    python -m loadtests.fanout.baseline_websockets --port 8765 --redis-url redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import uuid
from typing import Any

import orjson
import redis.asyncio as aioredis
from websockets.asyncio.server import ServerConnection, broadcast, serve

SUBPROTOCOL = "souk.v1.json"


class Hub:
    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self.epoch = uuid.uuid4().hex[:8]
        self.pubsub = redis.pubsub(ignore_subscribe_messages=True)
        self.members: dict[str, set[ServerConnection]] = {}
        self.offsets: dict[str, int] = {}
        self.lock = asyncio.Lock()

    async def subscribe(self, ws: ServerConnection, channel: str) -> int:
        async with self.lock:
            members = self.members.get(channel)
            if members is None:
                members = self.members[channel] = set()
                self.offsets.setdefault(channel, 0)
                await self.pubsub.subscribe(self.prefix + channel)
            members.add(ws)
            return self.offsets[channel]

    async def leave(self, ws: ServerConnection, channels: set[str]) -> None:
        async with self.lock:
            for channel in channels:
                members = self.members.get(channel)
                if members is None:
                    continue
                members.discard(ws)
                if not members:
                    del self.members[channel]
                    await self.pubsub.unsubscribe(self.prefix + channel)

    async def pump(self) -> None:
        """Forward every Redis message to the channel's local subscribers."""
        skip = len(self.prefix)
        while True:
            if not self.pubsub.subscribed:
                await asyncio.sleep(0.05)
                continue
            msg = await self.pubsub.get_message(timeout=1.0)
            if msg is None or msg["type"] != "message":
                continue
            channel = msg["channel"].decode()[skip:]
            members = self.members.get(channel)
            offset = self.offsets.get(channel, 0) + 1
            self.offsets[channel] = offset
            if not members:
                continue
            frame = b'{"channel":%s,"offset":%d,"data":%s}' % (
                orjson.dumps(channel), offset, msg["data"]
            )
            broadcast(members, frame.decode())


def make_handler(hub: Hub) -> Any:
    async def handler(ws: ServerConnection) -> None:
        joined: set[str] = set()
        try:
            async for raw in ws:
                reply = await command(hub, ws, joined, raw)
                await ws.send(orjson.dumps(reply).decode())
        finally:
            await hub.leave(ws, joined)

    return handler


async def command(hub: Hub, ws: ServerConnection, joined: set[str], raw: str | bytes) -> Any:
    try:
        cmd = orjson.loads(raw)
        cid, op = cmd["id"], cmd["op"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return {"id": 0, "error": {"code": "bad_frame", "message": "bad frame", "temporary": False}}
    if op == "subscribe" and isinstance(cmd.get("channel"), str):
        offset = await hub.subscribe(ws, cmd["channel"])
        joined.add(cmd["channel"])
        return {"id": cid, "result": {"epoch": hub.epoch, "offset": offset,
                                      "recovered": False, "publications": []}}
    if op == "ping":
        return {"id": cid, "result": {}}
    return {"id": cid, "error": {"code": "unknown_op", "message": op, "temporary": False}}


async def main(port: int, redis_url: str, prefix: str) -> None:
    redis = aioredis.Redis.from_url(redis_url)
    hub = Hub(redis, prefix)
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    pump = asyncio.create_task(hub.pump())
    async with serve(
        make_handler(hub), "127.0.0.1", port, subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
        compression=None, max_size=65536, backlog=4096,
    ):
        await stop
    pump.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await pump
    await redis.aclose()


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--prefix", default="bench:fanout:")
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        asyncio.run(main(args.port, args.redis_url, args.prefix))
    else:
        uvloop.run(main(args.port, args.redis_url, args.prefix))


if __name__ == "__main__":
    cli()
