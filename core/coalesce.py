"""Coalesce calls made in the same event-loop turn into one batch call.

A hot path that asks the same kind of question many times at once (a burst of bids each
checking a wallet or a rate limit) pays one round trip per burst instead of one per call:
`await coalescer.call(item)` queues the item; at the end of the current loop turn (or when
`max_batch` items are queued) the whole batch goes to `send(items)`, whose results are handed
back in order. If `send` raises an `Exception`, every caller of that batch gets it.

With `max_in_flight=N`, at most N batches are on their way at once: calls made meanwhile wait
and go together when one comes back (a busy process pays fewer round trips, each carrying more,
at the cost of up to one round trip of waiting); a full batch (`max_batch`) still goes at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Coalescer(Generic[T, R]):
    def __init__(
        self, send: Callable[[list[T]], Awaitable[Sequence[R]]], *, max_batch: int = 1_000,
        max_in_flight: int = 0,
    ) -> None:
        self._send = send
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight  # 0: no limit
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        # batches whose `send` has not returned: not len(_tasks), which still holds a task
        # whose `_run` has ended until its done-callback runs (after `_turn_ends` is scheduled)
        self._in_flight = 0
        self._scheduled = False

    async def call(self, item: T) -> R:
        """`send([..., item, ...])`'s result for `item`. Raises what `send` raised."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._pending.append((item, future))
        if len(self._pending) >= self._max_batch:
            self._flush()
        elif not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._turn_ends)
        return await future

    def _turn_ends(self) -> None:
        self._scheduled = False
        if not self._max_in_flight or self._in_flight < self._max_in_flight:
            self._flush()
        # else: the next batch goes when one on its way comes back (`_run`)

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        if batch:
            self._in_flight += 1
            task = asyncio.ensure_future(self._run(batch))
            self._tasks.add(task)  # keep a reference until done
            task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            await self._deliver(batch)
        finally:
            self._in_flight -= 1
            if self._pending and not self._scheduled:
                # what waited for this batch goes at the end of this turn
                self._scheduled = True
                asyncio.get_running_loop().call_soon(self._turn_ends)

    async def _deliver(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._send([item for item, _ in batch])
        except BaseException as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
