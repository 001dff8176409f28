"""Token buckets on real Redis."""

from __future__ import annotations

import redis.asyncio as aioredis

from core.context import Runtime
from core.metrics import Metrics
from core.ratelimit import RateLimiter


async def test_bucket_drains_and_peek_takes_nothing(rt: Runtime) -> None:
    for _ in range(3):
        assert (await rt.limiter.take("t", "s", capacity=3, window_s=60)).allowed
    denied = await rt.limiter.take("t", "s", capacity=3, window_s=60)
    assert not denied.allowed
    assert 15 <= denied.retry_after_s <= 20  # one token refills every 20 s
    assert not (await rt.limiter.take("t", "s", capacity=3, window_s=60, cost=0)).allowed
    assert (await rt.limiter.take("t", "other", capacity=3, window_s=60, cost=0)).allowed
    await rt.limiter.reset("t", "s")
    assert (await rt.limiter.take("t", "s", capacity=3, window_s=60)).allowed


async def test_refills_over_time(rt: Runtime) -> None:
    assert (await rt.limiter.take("fast", "s", capacity=1, window_s=0.05)).allowed
    import asyncio

    await asyncio.sleep(0.1)
    assert (await rt.limiter.take("fast", "s", capacity=1, window_s=0.05)).allowed


async def test_fails_open_when_redis_is_unreachable() -> None:
    dead = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    metrics = Metrics()
    limiter = RateLimiter(dead, prefix="x:", metrics=metrics)
    decision = await limiter.take("login", "a", capacity=1, window_s=60)
    assert decision.allowed
    assert (
        metrics.registry.get_sample_value("souk_rate_limiter_errors_total", {"limiter": "login"})
        == 1.0
    )
    await dead.aclose()
