"""Coalesce calls made in the same event-loop turn into one batch call.

A hot path that asks the same kind of question many times at once (a burst of bids each
checking a wallet or a rate limit) pays one round trip per burst instead of one per call:
`await coalescer.call(item)` queues the item; at the end of the current loop turn (or when
`max_batch` items are queued) the whole batch goes to `send(items)`, whose results are handed
back in order. If `send` raises an `Exception`, every caller of that batch gets it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Coalescer(Generic[T, R]):
    def __init__(
        self, send: Callable[[list[T]], Awaitable[Sequence[R]]], *, max_batch: int = 1_000
    ) -> None:
        self._send = send
        self._max_batch = max_batch
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def call(self, item: T) -> R:
        """`send([..., item, ...])`'s result for `item`. Raises what `send` raised."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._pending.append((item, future))
        if len(self._pending) == 1:
            loop.call_soon(self._flush)
        elif len(self._pending) >= self._max_batch:
            self._flush()
        return await future

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        if batch:
            task = asyncio.ensure_future(self._run(batch))
            self._tasks.add(task)  # keep a reference until done
            task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
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
