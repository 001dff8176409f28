"""The auctions package's ports (`auctions/ports.py`), implemented over the ledger and commerce.

The winner's payment reuses the order's own ledger transfers: the auction's hold and capture are
issued under the order's canonical transfer ids (`api.orders.service.transfer_id`), so when
`mark_paid` then runs the ordinary `pending_payment → paid` transition (which captures), the
ledger recognises the same transfer and replays it. One capture, one code path for orders.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from api.catalog import store as catalog
from api.checkout.service import place_item_order
from api.ledger import balances
from api.ledger import service as ledger
from api.orders import service as orders
from api.orders import store as order_store
from api.orders.machine import Actor, OrderState
from api.orders.service import By
from api.shows import store as shows
from api.stock import store as stock
from auctions.ports import Announced, VariantInfo
from realtime.hub import Hub

# Commerce's reservation job must not cancel an unpaid auction order before the auction's own
# payment-window rule does (which announces it): give the reservation this much more time.
_RESERVATION_MARGIN_S = 300


class LedgerFunds:
    """`auctions.ports.Funds` over `api.ledger.service`."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def available_many(
        self, conn: asyncpg.Connection | None, user_ids: list[uuid.UUID], currency: str
    ) -> dict[uuid.UUID, int]:
        """Spendable balances of many buyers in one query (a bid batch's funds check)."""
        return await balances.available_many(conn or self._pool, user_ids, currency)

    async def hold_for_order(
        self,
        conn: asyncpg.Connection,
        *,
        buyer_id: uuid.UUID,
        order_id: uuid.UUID,
        amount: int,
        currency: str,
    ) -> None:
        await ledger.hold_for_order(
            conn, buyer_id=buyer_id, order_id=order_id, amount=amount, currency=currency,
            transfer_id=orders.transfer_id(order_id, "hold"),
        )

    async def capture_hold(self, conn: asyncpg.Connection, *, order_id: uuid.UUID) -> None:
        await ledger.capture_hold(
            conn, order_id=order_id, transfer_id=orders.transfer_id(order_id, "capture")
        )


class CommerceOrders:
    """`auctions.ports.Orders` over checkout and the order state machine."""

    def __init__(self, *, payment_window_s: int) -> None:
        self._reservation_s = payment_window_s + _RESERVATION_MARGIN_S

    async def create_auction_order(
        self,
        conn: asyncpg.Connection,
        *,
        buyer_id: uuid.UUID,
        variant_id: uuid.UUID,
        amount: int,
        unit_held: bool,
    ) -> uuid.UUID:
        placed = await place_item_order(
            conn, buyer_id=buyer_id, variant_id=variant_id, unit_price=amount,
            reservation_ttl_s=self._reservation_s, hold=False, stock_reserved=unit_held,
        )
        return uuid.UUID(placed.id)

    async def mark_paid(self, conn: asyncpg.Connection, *, order_id: uuid.UUID) -> None:
        if await order_store.lock_state(conn, order_id) is OrderState.PENDING_PAYMENT:
            await orders.transition(
                conn, order_id, OrderState.PAID, by=By(Actor.SYSTEM, None, "system"),
                reason="auction won and paid from the wallet",
            )

    async def cancel_unpaid(
        self, conn: asyncpg.Connection, *, order_id: uuid.UUID, reason: str
    ) -> None:
        if await order_store.lock_state(conn, order_id) is OrderState.PENDING_PAYMENT:
            await orders.transition(
                conn, order_id, OrderState.CANCELLED, by=By(Actor.SYSTEM, None, "system"),
                reason=reason,
            )


class CatalogVariants:
    """`auctions.ports.VariantLookup` over the catalog, stock and shows stores."""

    async def variant(self, conn: asyncpg.Connection, variant_id: uuid.UUID) -> VariantInfo | None:
        found = await catalog.find_variant(conn, variant_id)
        return None if found is None else VariantInfo(variant_id, found.seller_id, found.currency)

    async def hold_unit(self, conn: asyncpg.Connection, variant_id: uuid.UUID) -> bool:
        return await stock.reserve_stock(conn, variant_id, 1) is not None

    async def release_unit(self, conn: asyncpg.Connection, variant_id: uuid.UUID) -> None:
        await stock.release_units(conn, variant_id, 1)

    async def show_seller(self, conn: asyncpg.Connection, show_id: uuid.UUID) -> uuid.UUID | None:
        show = await shows.get(conn, show_id)
        return None if show is None else show.seller_id


class HubPublisher:
    """`auctions.ports.Publisher` over the real-time hub (offsets assigned in Redis, in call
    order per channel)."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub

    async def publish(self, channel: str, data: dict[str, Any]) -> None:
        await self._hub.publish(channel, data)

    async def announce(self, channel: str, number: int, items: list[dict[str, Any]],
                       *, after_gap: bool = False) -> Announced:
        result = await self._hub.publish_ordered(channel, number, items, after_gap=after_gap)
        return Announced(result.status, result.last_order)
