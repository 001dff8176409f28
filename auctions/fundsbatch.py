"""Coalesced wallet pre-checks: every `available` asked in the same event-loop turn (a burst of
bids) is answered by one query per currency when the Funds port offers `available_many`,
instead of one pool round trip per bid. Ports without it are asked one by one, concurrently."""

from __future__ import annotations

import asyncio
import uuid
from typing import Protocol, runtime_checkable

from auctions.ports import Funds
from core.coalesce import Coalescer


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
        self._by_currency: dict[str, Coalescer[uuid.UUID, int]] = {}

    async def available(self, user_id: uuid.UUID, currency: str) -> int:
        batches = self._by_currency.get(currency)
        if batches is None:
            batches = self._by_currency[currency] = Coalescer(
                lambda users: self._ask(users, currency), max_batch=self._max_batch
            )
        return await batches.call(user_id)

    async def _ask(self, users: list[uuid.UUID], currency: str) -> list[int]:
        if isinstance(self._funds, BulkFunds):
            found = await self._funds.available_many(sorted(set(users)), currency)
            return [found.get(u, 0) for u in users]
        return list(await asyncio.gather(
            *(self._funds.available(None, u, currency) for u in users)))
