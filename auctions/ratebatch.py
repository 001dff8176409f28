"""Coalesced per-user bid rate limiting: every `take` issued in the same event-loop turn goes
to Redis in one pipelined round trip (`RateLimiter.take_many`), so a hot auction pays one Redis
call per burst instead of one per bid. Fails open like the limiter itself."""

from __future__ import annotations

from core.coalesce import Coalescer
from core.ratelimit import Decision, RateLimiter


class CoalescingLimiter:
    def __init__(self, limiter: RateLimiter, name: str, *, capacity: int, window_s: float,
                 max_batch: int = 1_000) -> None:
        async def send(subjects: list[str]) -> list[Decision]:
            return await limiter.take_many(name, subjects, capacity=capacity, window_s=window_s)

        self._batches: Coalescer[str, Decision] = Coalescer(send, max_batch=max_batch)

    async def take(self, subject: str) -> Decision:
        return await self._batches.call(subject)
