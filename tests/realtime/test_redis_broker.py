"""The Redis broker's batch publish against the real Redis: one call, consecutive offsets,
nothing interleaved, history and pub/sub in the same order."""

from __future__ import annotations

import asyncio
import uuid

import orjson
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from core.config import Settings
from realtime.broker import Message
from realtime.metrics import HubMetrics
from realtime.protocol import Position
from realtime.redis_broker import RedisBroker, _with_host
from tests.conftest import TIMING_FACTOR


async def test_publish_many_gives_consecutive_offsets_in_one_unit(settings: Settings) -> None:
    redis = aioredis.from_url(settings.redis_url)
    broker = RedisBroker(redis, settings.redis_url, prefix=settings.redis_prefix,
                         metrics=HubMetrics(CollectorRegistry()))
    got: list[Message] = []
    broker.attach(got.append, lambda: None)
    await broker.start()
    try:
        channel = f"auction:{uuid.uuid4()}"
        await broker.subscribe(channel)
        first = await broker.publish(channel, b'{"n":0}')
        assert first is not None
        # Two batches racing with single publications: each batch stays contiguous.
        results = await asyncio.gather(
            broker.publish_many(channel, [orjson.dumps({"b": 1, "i": i}) for i in range(5)]),
            broker.publish(channel, b'{"single":1}'),
            broker.publish_many(channel, [orjson.dumps({"b": 2, "i": i}) for i in range(5)]),
        )
        for batch in (results[0], results[2]):
            offsets = [p.offset for p in batch]
            assert offsets == list(range(offsets[0], offsets[0] + 5))
            assert {p.epoch for p in batch} == {first.epoch}
        assert await broker.publish_many(channel, []) == []
        for _ in range(int(200 * TIMING_FACTOR)):
            if len(got) == 12:
                break
            await asyncio.sleep(0.01)
        assert [m.offset for m in got] == list(range(1, 13))  # pub/sub order = offset order
        bodies = [orjson.loads(m.payload)["data"] for m in got]
        by_batch = [[b["i"] for b in bodies if b.get("b") == k] for k in (1, 2)]
        assert by_batch == [list(range(5)), list(range(5))]
        recovery = await broker.recover(channel, Position(first.epoch, 1), limit=100)
        assert recovery.publications is not None
        assert [orjson.loads(p)["offset"] for p in recovery.publications] == list(range(2, 13))
    finally:
        await broker.close()
        await redis.aclose()


async def test_publish_ordered_refuses_gaps_and_duplicates(settings: Settings) -> None:
    redis = aioredis.from_url(settings.redis_url)
    broker = RedisBroker(redis, settings.redis_url, prefix=settings.redis_prefix,
                         metrics=HubMetrics(CollectorRegistry()))
    try:
        channel = f"auction:{uuid.uuid4()}"
        first = await broker.publish_ordered(channel, 5, [b'{"n":5}'])  # no record: accepted
        assert (first.status, first.last_order, [p.offset for p in first.positions]) == (
            "published", 5, [1])
        gap = await broker.publish_ordered(channel, 7, [b'{"n":7}'])
        assert (gap.status, gap.last_order, gap.positions) == ("gap", 5, [])
        dup = await broker.publish_ordered(channel, 5, [b'{"n":5}'])
        assert (dup.status, dup.last_order) == ("duplicate", 5)
        six = await broker.publish_ordered(channel, 6, [b'{"n":6}', b'{"n":6.5}'])
        assert (six.status, [p.offset for p in six.positions]) == ("published", [2, 3])
        over = await broker.publish_ordered(channel, 9, [b'{"n":9}'], after_gap=True)
        assert (over.status, over.last_order) == ("published", 9)
        await broker.publish(channel, b'{"plain":1}')  # unordered publications do not count
        assert (await broker.publish_ordered(channel, 10, [b"{}"])).status == "published"
        # Redis lost the channel: the next number is accepted as the new start
        await redis.delete(*[k async for k in redis.scan_iter(match=f"{settings.redis_prefix}*")])
        again = await broker.publish_ordered(channel, 42, [b"{}"])
        assert (again.status, again.last_order) == ("published", 42)
    finally:
        await redis.aclose()


def test_a_node_url_keeps_the_scheme_credentials_and_database() -> None:
    """With sharded pub/sub on a cluster, each node's connection is REDIS_URL pointed at it."""
    assert _with_host("rediss://app:s3cret@cache-0:6380/2?ssl_cert_reqs=none", "10.0.0.7",
                      7001) == "rediss://app:s3cret@10.0.0.7:7001/2?ssl_cert_reqs=none"
    assert _with_host("redis://127.0.0.1:6379/0", "127.0.0.1", 7002) == (
        "redis://127.0.0.1:7002/0")
    assert _with_host("redis://[::1]:6379", "::1", 7003) == "redis://[::1]:7003"
