"""In-memory implementations of the ports (`auctions/ports.py`), for unit tests and for running
auctions before the real hub, ledger and commerce are wired in. They never replace PostgreSQL or
Redis: the auction's own storage is always real.

They ignore `conn`: their changes do not roll back with the caller's transaction, which is the
one behaviour the real implementations add.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from auctions.errors import InsufficientFunds
from auctions.ports import Announced, VariantInfo


@dataclass
class MemoryPublisher:
    """Records publications per channel, in order."""

    published: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))

    async def publish(self, channel: str, data: dict[str, Any]) -> None:
        self.published[channel].append(data)

    announced: dict[str, int] = field(default_factory=dict)

    async def announce(self, channel: str, number: int, items: list[dict[str, Any]],
                       *, after_gap: bool = False) -> Announced:
        last = self.announced.get(channel, 0)
        if last and number <= last:
            return Announced("duplicate", last)
        if last and number > last + 1 and not after_gap:
            return Announced("gap", last)
        self.announced[channel] = number
        self.published[channel].extend(items)
        return Announced("published", number)


@dataclass
class MemoryFunds:
    """Wallet balances and holds per user (single currency per user for simplicity)."""

    balances: dict[uuid.UUID, int] = field(default_factory=dict)
    holds: dict[uuid.UUID, tuple[uuid.UUID, int]] = field(default_factory=dict)  # order → hold
    captured: dict[uuid.UUID, int] = field(default_factory=dict)
    transfers: set[tuple[uuid.UUID, str]] = field(default_factory=set)  # (order, step) done

    def credit(self, user_id: uuid.UUID, amount: int) -> None:
        self.balances[user_id] = self.balances.get(user_id, 0) + amount

    async def available(
        self, conn: asyncpg.Connection | None, user_id: uuid.UUID, currency: str
    ) -> int:
        held = sum(a for u, a in self.holds.values() if u == user_id)
        return self.balances.get(user_id, 0) - held

    async def available_many(
        self, conn: asyncpg.Connection | None, user_ids: list[uuid.UUID], currency: str
    ) -> dict[uuid.UUID, int]:
        return {u: await self.available(conn, u, currency) for u in user_ids}

    async def hold_for_order(
        self, conn: asyncpg.Connection, *, buyer_id: uuid.UUID, order_id: uuid.UUID, amount: int,
        currency: str,
    ) -> None:
        if (order_id, "hold") in self.transfers:
            return
        if await self.available(conn, buyer_id, currency) < amount:
            raise InsufficientFunds()
        self.transfers.add((order_id, "hold"))
        self.holds[order_id] = (buyer_id, amount)

    async def capture_hold(self, conn: asyncpg.Connection, *, order_id: uuid.UUID) -> None:
        if (order_id, "capture") in self.transfers:
            return
        buyer, amount = self.holds.pop(order_id)
        self.transfers.add((order_id, "capture"))
        self.balances[buyer] -= amount
        self.captured[order_id] = amount


@dataclass
class MemoryOrders:
    """Orders by id."""

    orders: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)  # order id → order

    async def create_auction_order(
        self, conn: asyncpg.Connection, *, buyer_id: uuid.UUID, variant_id: uuid.UUID,
        amount: int, unit_held: bool,
    ) -> uuid.UUID:
        order_id = uuid.uuid4()
        self.orders[order_id] = {
            "id": order_id, "buyer_id": buyer_id, "variant_id": variant_id, "amount": amount,
            "state": "pending_payment", "unit_held": unit_held,
        }
        return order_id

    async def mark_paid(self, conn: asyncpg.Connection, *, order_id: uuid.UUID) -> None:
        self.orders[order_id]["state"] = "paid"

    async def cancel_unpaid(
        self, conn: asyncpg.Connection, *, order_id: uuid.UUID, reason: str
    ) -> None:
        order = self.orders[order_id]
        if order["state"] == "pending_payment":
            order["state"] = "cancelled"


@dataclass
class MemoryVariants:
    variants: dict[uuid.UUID, VariantInfo] = field(default_factory=dict)
    available: dict[uuid.UUID, int] = field(default_factory=dict)  # units not reserved

    def add(self, seller_id: uuid.UUID, currency: str = "USD", units: int = 1) -> uuid.UUID:
        variant_id = uuid.uuid4()
        self.variants[variant_id] = VariantInfo(variant_id, seller_id, currency)
        self.available[variant_id] = units
        return variant_id

    async def variant(self, conn: asyncpg.Connection, variant_id: uuid.UUID) -> VariantInfo | None:
        return self.variants.get(variant_id)

    async def hold_unit(self, conn: asyncpg.Connection, variant_id: uuid.UUID) -> bool:
        if self.available.get(variant_id, 0) < 1:
            return False
        self.available[variant_id] -= 1
        return True

    async def release_unit(self, conn: asyncpg.Connection, variant_id: uuid.UUID) -> None:
        self.available[variant_id] += 1

    shows: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)  # show -> its seller

    def add_show(self, seller_id: uuid.UUID) -> uuid.UUID:
        show_id = uuid.uuid4()
        self.shows[show_id] = seller_id
        return show_id

    async def show_seller(self, conn: asyncpg.Connection, show_id: uuid.UUID) -> uuid.UUID | None:
        return self.shows.get(show_id)
