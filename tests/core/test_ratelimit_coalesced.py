"""Coalesced bid rate limiting on the real Redis."""

from __future__ import annotations

import asyncio

from core.context import Runtime
from core.ratelimit import CoalescingLimiter


async def test_take_many_matches_take(rt: Runtime) -> None:
    decisions = await rt.limiter.take_many("t", ["a", "b", "a", "a"], capacity=2, window_s=60)
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert decisions[3].retry_after_s > 0
    single = await rt.limiter.take("t", "b", capacity=2, window_s=60)
    assert single.allowed  # b had one token left
    assert not (await rt.limiter.take("t", "b", capacity=2, window_s=60)).allowed


async def test_coalescing_limiter_batches_one_turn(rt: Runtime) -> None:
    gate = CoalescingLimiter(rt.limiter, "bids", capacity=3, window_s=60)
    results = await asyncio.gather(*(gate.take(user) for user in ["u1"] * 5 + ["u2"] * 2))
    assert [d.allowed for d in results] == [True, True, True, False, False, True, True]
