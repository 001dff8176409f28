"""Coalesced per-user bid rate limiting: the `take`s issued in the same event-loop turn go to
Redis in one round trip (`RateLimiter.take_many`), and while one is on its way the next ones
wait and go together when it comes back — a hot auction pays one Redis call per round trip
instead of one per bid (a bid's check runs while it waits for its batch anyway). Fails open like
the limiter itself."""

from __future__ import annotations

from core.coalesce import Coalescer
from core.ratelimit import Decision, RateLimiter


class CoalescingLimiter:
    def __init__(self, limiter: RateLimiter, name: str, *, capacity: int, window_s: float,
                 max_batch: int = 1_000) -> None:
        async def send(subjects: list[str]) -> list[Decision]:
            return await limiter.take_many(name, subjects, capacity=capacity, window_s=window_s)

        self._batches: Coalescer[str, Decision] = Coalescer(send, max_batch=max_batch,
                                                           max_in_flight=1)

    async def take(self, subject: str) -> Decision:
        return await self._batches.call(subject)
