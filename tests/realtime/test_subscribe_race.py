"""New subscribers of a channel published on at the same time, on the real Redis: each sees
every offset after its subscribe result exactly once, in order (the show-night duplicate,
`loadtests.subscribe_repeat`, in one process and bounded)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from core.config import Settings
from realtime.channels import ANONYMOUS, parse_channel
from realtime.hub import Hub
from realtime.metrics import HubMetrics
from realtime.redis_broker import RedisBroker
from realtime.wire import Codec
from tests.conftest import TIMING_FACTOR
from tests.realtime.hubkit import FakeSink

SUBSCRIBERS = 80
RATE = 200  # publications a second
SECONDS = 2.0


@pytest.mark.slow  # ~3 s: two seconds of publications
async def test_subscribers_joining_a_busy_channel_see_each_offset_once(
    settings: Settings,
) -> None:
    redis = aioredis.from_url(settings.redis_url)
    metrics = HubMetrics(CollectorRegistry())
    broker = RedisBroker(redis, settings.redis_url, prefix=settings.redis_prefix,
                         metrics=metrics)
    hub = Hub(broker, metrics=metrics)  # the default flush delay: sweeps wait between them
    await broker.start()
    name = f"show:{uuid.uuid4()}"
    channel = parse_channel(name)
    joined: list[tuple[FakeSink, int]] = []
    try:
        await hub.subscribe(hub.connect(FakeSink(), Codec.JSON, ANONYMOUS), channel, None)

        async def publisher() -> None:
            for n in range(int(RATE * SECONDS)):
                await hub.publish(name, {"n": n})
                await asyncio.sleep(1 / RATE)

        async def subscriber(delay: float) -> None:
            await asyncio.sleep(delay)
            sink = FakeSink()
            client = hub.connect(sink, Codec.JSON, ANONYMOUS)
            result = await hub.subscribe(client, channel, None)
            client.send(b'{"id":1,"result":{}}')
            hub.release(client, channel, result)
            joined.append((sink, result.position.offset))

        await asyncio.gather(publisher(), *(subscriber(SECONDS * i / SUBSCRIBERS)
                                            for i in range(SUBSCRIBERS)))
        last = (await broker.position(name)).offset
        for _ in range(int(300 * TIMING_FACTOR)):
            if all(_offsets(s)[-1:] == [last] or top == last for s, top in joined):
                break
            await asyncio.sleep(0.01)
        wrong = [(top, _offsets(s)[:5]) for s, top in joined
                 if _offsets(s) != list(range(top + 1, last + 1)) or s.closed is not None]
        assert wrong == [], f"{len(wrong)} of {SUBSCRIBERS} subscribers: (result, first seen)"
    finally:
        await broker.close()
        await redis.aclose()


def _offsets(sink: FakeSink) -> list[int]:
    out = []
    for m in sink.messages():
        if "channel" in m:
            offset = m["offset"]
            assert isinstance(offset, int)
            out.append(offset)
    return out
