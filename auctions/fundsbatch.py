"""Coalesced wallet pre-checks: every `available` asked in the same event-loop turn (a burst of
bids) is answered by one query when the Funds port offers `available_many`, instead of one pool
round trip per bid. Ports without it are asked one by one, concurrently."""

from __future__ import annotations

import asyncio
import uuid
from typing import Protocol, runtime_checkable

from auctions.ports import Funds


@runtime_checkable
class BulkFunds(Protocol):
    async def available_many(
        self, user_ids: list[uuid.UUID], currency: str
    ) -> dict[uuid.UUID, int]:
        """Each user's available wallet balance in `currency` (absent users: 0)."""


class CoalescingFunds:
    def __init__(self, funds: Funds, *, max_batch: int = 1_000) -> None:
        self._funds = funds
        self._max_batch = max_batch
        self._pending: list[tuple[uuid.UUID, str, asyncio.Future[int]]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def available(self, user_id: uuid.UUID, currency: str) -> int:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        self._pending.append((user_id, currency, future))
        if len(self._pending) == 1:
            loop.call_soon(self._flush)
        elif len(self._pending) >= self._max_batch:
            self._flush()
        return await future

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        by_currency: dict[str, list[tuple[uuid.UUID, asyncio.Future[int]]]] = {}
        for user, currency, future in batch:
            by_currency.setdefault(currency, []).append((user, future))
        for currency, items in by_currency.items():
            task = asyncio.ensure_future(self._send(currency, items))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(
        self, currency: str, items: list[tuple[uuid.UUID, asyncio.Future[int]]]
    ) -> None:
        try:
            if isinstance(self._funds, BulkFunds):
                found = await self._funds.available_many(
                    sorted({u for u, _ in items}), currency)
                values = [found.get(u, 0) for u, _ in items]
            else:
                values = list(await asyncio.gather(
                    *(self._funds.available(None, u, currency) for u, _ in items)))
        except BaseException as exc:
            for _, future in items:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), value in zip(items, values, strict=True):
            if not future.done():
                future.set_result(value)
