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
from api.catalog import store as catalog_store
from api.checkout.errors import CartEmpty, OutOfStock, PriceChanged, ProductUnavailable
from api.checkout.rules import Item, split
from api.checkout.schemas import PlacedOrder
from api.ledger import rules as ledger_rules
from api.ledger.errors import InsufficientFunds, InvalidAmount
from api.ledger.rules import TransferKind
from api.orders.machine import OrderState
from api.orders.service import transfer_id
from api.stock import store as stock
from core.errors import FieldError, NotFound


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
    for line in lines:  # sold out as of the cart read: refuse before writing anything (a
        # flash drop's late buyers cost one read, not a rolled-back transaction); units that
        # are there are still taken under the variant row's lock at the end
        if line.available < line.quantity:
            raise OutOfStock(params={"sku": line.sku},
                             extra={"variant_id": str(line.variant_id)})
    items = [
        Item(ln.variant_id, ln.product_id, ln.seller_id, ln.currency, ln.title, ln.sku, ln.price,
             ln.quantity)
        for ln in lines
    ]
    return await _place(conn, buyer_id, items, reservation_ttl_s, list_price=True,
                        clear_cart=True)


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
    variant = await catalog_store.find_variant(conn, variant_id)
    if variant is None:
        raise NotFound()
    if unit_price <= 0 or quantity <= 0:
        raise ValueError("unit_price and quantity must be positive")
    item = Item(variant.id, variant.product_id, variant.seller_id, variant.currency,
                variant.title, variant.sku, unit_price, quantity)
    [placed] = await _place(
        conn, buyer_id, [item], reservation_ttl_s, list_price=False, hold=hold,
        reserve=not stock_reserved,
    )
    return placed


_PLACE_SQL = """SELECT commerce_place_orders($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,
                                           $13, $14, $15, $16)"""


async def _place(
    conn: asyncpg.Connection, buyer_id: uuid.UUID, items: list[Item], reservation_ttl_s: int,
    *, list_price: bool, hold: bool = True, reserve: bool = True, clear_cart: bool = False,
) -> list[PlacedOrder]:
    """A checkout's writes in one statement (migration 0160, `commerce_place_orders`): orders,
    lines, history, outbox events, wallet holds, the emptied cart; then the stock, one
    statement per variant in ascending id (the hot rows last)."""
    groups = sorted(((uuid.uuid4(), g) for g in split(items)), key=lambda p: p[0])
    lines = [(oid, i) for oid, g in groups for i in g.items]
    holds = [(transfer_id(oid, "hold"), ledger_rules.fingerprint(
        TransferKind.HOLD, {"buyer": buyer_id, "order": oid, "amount": g.total,
                            "currency": g.currency})) for oid, g in groups] if hold else []
    for _, g in groups if hold else []:
        try:
            ledger_rules.check_amount(g.total)
        except ledger_rules.LedgerRuleError as exc:
            raise InvalidAmount([FieldError("amount", str(exc))]) from None
    try:
        until = await conn.fetchval(
            _PLACE_SQL, buyer_id, float(reservation_ttl_s),
            [oid for oid, _ in groups], [g.seller_id for _, g in groups],
            [g.currency for _, g in groups], [g.total for _, g in groups],
            [h[0] for h in holds], [h[1] for h in holds],
            [oid for oid, _ in lines], [i.variant_id for _, i in lines],
            [i.product_id for _, i in lines], [i.title for _, i in lines],
            [i.sku for _, i in lines], [i.price for _, i in lines],
            [i.quantity for _, i in lines], clear_cart,
        )
    except asyncpg.RaiseError as exc:
        if exc.args and exc.args[0] == "insufficient_funds":
            raise InsufficientFunds() from None
        raise
    # Hot rows last, in ascending id: the stock rows of a flash drop stay locked only until
    # the commit that follows.
    for item in sorted(items, key=lambda i: i.variant_id) if reserve else []:
        price = await stock.reserve_stock(conn, item.variant_id, item.quantity)
        if price is None:
            raise OutOfStock(params={"sku": item.sku},
                             extra={"variant_id": str(item.variant_id)})
        if list_price and price != item.price:
            raise PriceChanged(params={"sku": item.sku},
                               extra={"variant_id": str(item.variant_id)})
    reserved_until = _iso(until)
    placed = [PlacedOrder(
        id=str(oid), state=OrderState.PENDING_PAYMENT.value, total=g.total, currency=g.currency,
        seller_id=str(g.seller_id), reserved_until=reserved_until,
    ) for oid, g in groups]
    return sorted(placed, key=lambda p: p.seller_id)
