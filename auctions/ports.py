"""What auctions need from other domains, injected by the composition root (`api/app.py`).

`auctions` never imports `api` or `realtime`; these Protocols say what it calls. `twins.py`
holds in-memory implementations for unit tests and for running the package alone; they never
stand in for PostgreSQL or Redis.

Calls that take `conn` run inside the auction's own PostgreSQL transaction, so the auction
change and the other domain's change commit together (or not at all).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg


@dataclass(frozen=True, slots=True)
class Announced:
    status: str  # "published" | "duplicate" (already announced) | "gap" (earlier ones missing)
    last: int  # the channel's last announcement number


class Publisher(Protocol):
    """The real-time hub: publish `data` on `channel` (e.g. `auction:{id}`) to every watcher.
    Must hand publications of one channel to the bus in call order; may raise on bus failure
    (the service logs and carries on: the bid is already durable)."""

    async def publish(self, channel: str, data: dict[str, Any]) -> None: ...

    async def announce(self, channel: str, number: int, items: list[dict[str, Any]],
                       *, after_gap: bool = False) -> Announced:
        """Publish `items` on `channel`, in order, as one unit (one bus round trip), as the
        channel's announcement `number` — only if it follows the last one announced (or the
        channel has none yet). `after_gap=True` publishes even over a gap (one that cannot be
        filled). Returns what happened and the channel's last announcement number."""
        ...


class Funds(Protocol):
    """The wallet ledger, for bid checks and the winner's payment."""

    async def available_many(
        self, conn: asyncpg.Connection | None, user_ids: list[uuid.UUID], currency: str
    ) -> dict[uuid.UUID, int]:
        """Spendable balances (posted credits - debits - pending holds, in cents) of many
        buyers in one query (a bid batch); users without a wallet may be absent (0)."""
        ...

    async def hold_for_order(
        self,
        conn: asyncpg.Connection,
        *,
        buyer_id: uuid.UUID,
        order_id: uuid.UUID,
        amount: int,
        currency: str,
    ) -> None:
        """Hold `amount` of the buyer's wallet for the order; idempotent per order (the
        implementation derives the transfer id from `order_id`). Raises an AppError with code
        `insufficient_funds` when the wallet cannot cover it."""
        ...

    async def capture_hold(self, conn: asyncpg.Connection, *, order_id: uuid.UUID) -> None:
        """Capture the order's hold into escrow; idempotent per order."""
        ...


class Orders(Protocol):
    """Commerce orders."""

    async def create_auction_order(
        self,
        conn: asyncpg.Connection,
        *,
        buyer_id: uuid.UUID,
        variant_id: uuid.UUID,
        amount: int,
        unit_held: bool,
    ) -> uuid.UUID:
        """Create the order in `pending_payment` for the hammer price (its seller and currency
        are the variant's); returns its id. Not idempotent: the caller records the id on the
        auction row in the same transaction and calls it once per sold auction. `unit_held`:
        the auction reserved the unit (`VariantLookup.hold_unit`) and the order takes that
        reservation over; else the order reserves a unit itself, and raises if none is
        available."""
        ...

    async def mark_paid(self, conn: asyncpg.Connection, *, order_id: uuid.UUID) -> None:
        """`pending_payment → paid` once the wallet hold is captured (idempotent)."""
        ...

    async def cancel_unpaid(
        self, conn: asyncpg.Connection, *, order_id: uuid.UUID, reason: str
    ) -> None:
        """`pending_payment → cancelled` when the payment window ran out (idempotent)."""
        ...


@dataclass(frozen=True, slots=True)
class VariantInfo:
    variant_id: uuid.UUID
    seller_id: uuid.UUID
    currency: str


class VariantLookup(Protocol):
    """Commerce catalog: who sells a variant and in which currency (None if unknown); the
    unit an auction sells, reserved while it runs."""

    async def variant(self, conn: asyncpg.Connection, variant_id: uuid.UUID) -> VariantInfo | None:
        ...

    async def hold_unit(self, conn: asyncpg.Connection, variant_id: uuid.UUID) -> bool:
        """Reserve one unit of the variant for an auction, in the caller's transaction, as an
        unpaid order would; False if none is available (all sold or reserved, or its product
        is not published)."""
        ...

    async def release_unit(self, conn: asyncpg.Connection, variant_id: uuid.UUID) -> None:
        """Give back the unit `hold_unit` reserved (the auction ended without a sale)."""
        ...

    async def show_seller(self, conn: asyncpg.Connection, show_id: uuid.UUID) -> uuid.UUID | None:
        """The seller whose show this is (None if there is no such show)."""
        ...
