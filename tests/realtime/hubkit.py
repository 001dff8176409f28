"""What the hub tests share: a recording sink, hubs on the in-memory bus, settling them."""

from __future__ import annotations

import asyncio

import msgpack
import orjson
from prometheus_client import CollectorRegistry

from realtime.broker import MemoryBroker, MemoryBus
from realtime.channels import ANONYMOUS, parse_channel
from realtime.hub import Client, Hub, OutFrame
from realtime.metrics import HubMetrics
from realtime.protocol import Position
from realtime.wire import Codec


class FakeSink:
    def __init__(self, buffered: int = 0) -> None:
        self.frames: list[OutFrame] = []
        self.pending = buffered
        self.closed: int | None = None

    def write(self, frame: OutFrame) -> None:
        self.frames.append(frame)

    def buffered(self) -> int:
        return self.pending

    def close(self, code: int, reason: str) -> None:
        self.closed = code

    def messages(self) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        for f in self.frames:
            if f.codec is Codec.JSON:
                out += [orjson.loads(line) for line in f.payload.split(b"\n")]
            else:
                unpacker = msgpack.Unpacker(raw=False)
                unpacker.feed(f.payload)
                out += list(unpacker)
        return out

    def publications(self) -> list[dict[str, object]]:
        return [m for m in self.messages() if "channel" in m]


def make_hub(bus: MemoryBus, **kw: object) -> Hub:
    hub = Hub(MemoryBroker(bus), metrics=HubMetrics(CollectorRegistry()), flush_delay_s=0,
              **kw)  # type: ignore[arg-type]
    HUBS.append(hub)
    return hub


HUBS: list[Hub] = []


async def settle() -> None:
    """Let pending deliveries (call_soon) and flushes (call_later) run."""
    for _ in range(1000):
        for _ in range(5):
            await asyncio.sleep(0)
        if all(h.idle() for h in HUBS):
            return
        await asyncio.sleep(0.001)


async def subscribe(hub: Hub, sink: FakeSink, name: str, *, codec: Codec = Codec.JSON,
                    since: Position | None = None) -> Client:
    client = hub.connect(sink, codec, ANONYMOUS)
    channel = parse_channel(name)
    result = await hub.subscribe(client, channel, since)
    hub.release(client, channel, result)
    return client
