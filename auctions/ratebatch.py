"""Coalesced per-user bid rate limiting: every `take` issued in the same event-loop turn goes
to Redis in one pipelined round trip (`RateLimiter.take_many`), so a hot auction pays one Redis
call per burst instead of one per bid. Fails open like the limiter itself."""

from __future__ import annotations

import asyncio

from core.ratelimit import Decision, RateLimiter


class CoalescingLimiter:
    def __init__(self, limiter: RateLimiter, name: str, *, capacity: int, window_s: float,
                 max_batch: int = 1_000) -> None:
        self._limiter = limiter
        self._name = name
        self._capacity = capacity
        self._window_s = window_s
        self._max_batch = max_batch
        self._pending: list[tuple[str, asyncio.Future[Decision]]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def take(self, subject: str) -> Decision:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Decision] = loop.create_future()
        self._pending.append((subject, future))
        if len(self._pending) == 1:
            loop.call_soon(self._flush)
        elif len(self._pending) >= self._max_batch:
            self._flush()
        return await future

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        if batch:
            task = asyncio.ensure_future(self._send(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[tuple[str, asyncio.Future[Decision]]]) -> None:
        try:
            decisions = await self._limiter.take_many(
                self._name, [s for s, _ in batch], capacity=self._capacity,
                window_s=self._window_s,
            )
        except Exception as exc:  # take_many fails open; anything else is a bug to surface
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), decision in zip(batch, decisions, strict=True):
            if not future.done():
                future.set_result(decision)
