"""Checkout as one transaction: orders, their history, wallet holds, stock reservations.

`place_orders(conn, ...)` runs inside the caller's transaction (the Idempotency-Key row commits
with it). Order of work, which matters for contention and deadlocks:
1. lock the buyer's cart rows (two checkouts of one cart serialise; the second finds it empty);
2. insert orders, lines, `created` events and outbox events (new rows: no contention);
3. hold each order's total on the buyer's wallet (ledger; locks only the buyer's accounts);
4. reserve stock variant by variant in ascending id — last, so the hot rows of a flash drop
   are locked for the shortest time (until commit);
5. empty the cart.
Any failure (out_of_stock, insufficient_funds, ...) raises and the caller rolls everything back.
"""

from __future__ import annotations

import uuid

import asyncpg

from api.cart import store as cart_store
from api.checkout.rules import (
    CartEmpty,
    Item,
    OutOfStock,
    PlacedOrder,
    PriceChanged,
    ProductUnavailable,
    split,
)
from api.ledger import service as ledger
from api.orders import store
from api.orders.machine import Actor, OrderState
from api.orders.service import By, record, transfer_id
from core.errors import NotFound


def _iso(value: object) -> str:
    text: str = value.isoformat()  # type: ignore[attr-defined]
    return text.replace("+00:00", "Z")


async def place_orders(
    conn: asyncpg.Connection, *, buyer_id: uuid.UUID, reservation_ttl_s: int
) -> list[PlacedOrder]:
    """Turn the buyer's cart into orders. Raises CartEmpty, ProductUnavailable, OutOfStock,
    PriceChanged or InsufficientFunds; the caller must then roll back."""
    lines = await cart_store.lines(conn, buyer_id, lock=True)
    if not lines:
        raise CartEmpty()
    for line in lines:
        if not line.published:
            raise ProductUnavailable(params={"sku": line.sku},
                                     extra={"variant_id": str(line.variant_id)})
    items = [
        Item(ln.variant_id, ln.product_id, ln.seller_id, ln.currency, ln.title, ln.sku, ln.price,
             ln.quantity)
        for ln in lines
    ]
    placed = await _place(conn, buyer_id, items, reservation_ttl_s, list_price=True)
    await cart_store.clear(conn, buyer_id)
    return placed


async def place_item_order(
    conn: asyncpg.Connection,
    *,
    buyer_id: uuid.UUID,
    variant_id: uuid.UUID,
    unit_price: int,
    quantity: int = 1,
    reservation_ttl_s: int,
    hold: bool = True,
    stock_reserved: bool = False,
) -> PlacedOrder:
    """One order for one variant at a price fixed elsewhere (an auction's hammer price), with
    the same guarantees as a checkout: stock reserved, total held on the wallet, one `created`
    event, all in the caller's transaction. Raises NotFound, ProductUnavailable, OutOfStock or
    InsufficientFunds; the caller must then roll back. Call it once per winning (the caller's
    idempotency: e.g. a unique auction id on its own row in the same transaction).

    `hold=False` leaves the wallet alone: the caller takes the payment itself (an auction
    winner whose wallet may be short gets the order anyway, and a payment window).
    `stock_reserved=True`: the units are reserved already (an auction held its unit while it
    ran) and the order takes them over: paying sells them, cancelling releases them."""
    row = await conn.fetchrow(
        """SELECT v.id, v.product_id, p.seller_id, p.currency, p.title, v.sku,
                  p.status = 'published' AS published
           FROM variants v JOIN products p ON p.id = v.product_id WHERE v.id = $1""",
        variant_id,
    )
    if row is None:
        raise NotFound()
    if unit_price <= 0 or quantity <= 0:
        raise ValueError("unit_price and quantity must be positive")
    item = Item(row["id"], row["product_id"], row["seller_id"], row["currency"], row["title"],
                row["sku"], unit_price, quantity)
    [placed] = await _place(
        conn, buyer_id, [item], reservation_ttl_s, list_price=False, hold=hold,
        reserve=not stock_reserved,
    )
    return placed


async def _place(
    conn: asyncpg.Connection, buyer_id: uuid.UUID, items: list[Item], reservation_ttl_s: int,
    *, list_price: bool, hold: bool = True, reserve: bool = True,
) -> list[PlacedOrder]:
    by = By(Actor.BUYER, buyer_id, "created")
    placed: list[tuple[uuid.UUID, int, PlacedOrder]] = []
    for group in split(items):
        row = await store.insert_order(
            conn, buyer_id=buyer_id, seller_id=group.seller_id, currency=group.currency,
            total=group.total, reservation_ttl_s=reservation_ttl_s,
            lines=[store.Line(i.variant_id, i.product_id, i.title, i.sku, i.price, i.quantity)
                   for i in group.items],
        )
        order_id, until = row["id"], row["reserved_until"]
        await record(conn, row, kind="created", from_state=None,
                     to_state=OrderState.PENDING_PAYMENT.value, by=by, reason=None,
                     topic="order.created",
                     extra={"total": group.total, "currency": group.currency})
        placed.append((order_id, group.total, PlacedOrder(
            id=str(order_id), state=OrderState.PENDING_PAYMENT.value, total=group.total,
            currency=group.currency, seller_id=str(group.seller_id), reserved_until=_iso(until),
        )))
    placed.sort(key=lambda p: p[0])  # the ledger asks for a stable order across transfers
    for order_id, total, view in placed if hold else []:
        await ledger.hold_for_order(
            conn, buyer_id=buyer_id, order_id=order_id, amount=total, currency=view.currency,
            transfer_id=transfer_id(order_id, "hold"),
        )
    # Hot rows last, in ascending id: the stock rows of a flash drop stay locked only until
    # the commit that follows.
    for item in sorted(items, key=lambda i: i.variant_id) if reserve else []:
        price = await store.reserve_stock(conn, item.variant_id, item.quantity)
        if price is None:
            raise OutOfStock(params={"sku": item.sku},
                             extra={"variant_id": str(item.variant_id)})
        if list_price and price != item.price:
            raise PriceChanged(params={"sku": item.sku},
                               extra={"variant_id": str(item.variant_id)})
    return [view for _, _, view in sorted(placed, key=lambda p: p[2].seller_id)]
