"""Order, line and event SQL. Callers own the transaction.

Lock order, everywhere: the order row, then ledger accounts (inside the ledger calls), then
variant rows in ascending id (`api.stock.store`). Checkout follows it too (its orders are new
rows), which keeps transitions, checkouts and the background jobs free of deadlocks against
each other.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

import asyncpg

from api.orders.machine import OrderState
from api.paging import Cursor

Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool


@dataclass(frozen=True, slots=True)
class Line:
    variant_id: uuid.UUID
    product_id: uuid.UUID
    title: str
    sku: str
    unit_price: int
    quantity: int


@dataclass(frozen=True, slots=True)
class Order:
    id: uuid.UUID
    buyer_id: uuid.UUID
    seller_id: uuid.UUID
    rider_id: uuid.UUID | None
    state: OrderState
    currency: str
    total: int
    reserved_until: datetime | None
    paid_at: datetime | None
    delivered_at: datetime | None
    settled_at: datetime | None
    created_at: datetime
    updated_at: datetime
    lines: tuple[Line, ...] = ()


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    order_id: uuid.UUID
    kind: str
    from_state: str | None
    to_state: str
    actor_id: uuid.UUID | None
    actor_role: str
    reason: str | None
    at: datetime
    amount: int | None = None  # refund events: the amount given back


def _order(row: asyncpg.Record, lines: tuple[Line, ...] = ()) -> Order:
    return Order(
        row["id"], row["buyer_id"], row["seller_id"], row["rider_id"], OrderState(row["state"]),
        row["currency"], row["total"], row["reserved_until"], row["paid_at"],
        row["delivered_at"], row["settled_at"], row["created_at"], row["updated_at"], lines,
    )


def _event(row: asyncpg.Record) -> Event:
    return Event(
        row["id"], row["order_id"], row["kind"], row["from_state"], row["to_state"],
        row["actor_id"], row["actor_role"], row["reason"], row["at"], row["amount"],
    )


async def insert_order(
    conn: asyncpg.Connection,
    *,
    buyer_id: uuid.UUID,
    seller_id: uuid.UUID,
    currency: str,
    total: int,
    reservation_ttl_s: int,
    lines: list[Line],
) -> asyncpg.Record:
    """Insert a pending_payment order and its lines. Returns the order row."""
    row = await conn.fetchrow(
        """INSERT INTO orders (buyer_id, seller_id, state, currency, total, reserved_until)
           VALUES ($1, $2, 'pending_payment', $3, $4, now() + make_interval(secs => $5))
           RETURNING *""",
        buyer_id, seller_id, currency, total, float(reservation_ttl_s),
    )
    await conn.executemany(
        """INSERT INTO order_lines (order_id, variant_id, product_id, title, sku, unit_price,
                                    quantity) VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        [(row["id"], ln.variant_id, ln.product_id, ln.title, ln.sku, ln.unit_price, ln.quantity)
         for ln in lines],
    )
    return row


async def get_order(conn: Conn, order_id: uuid.UUID) -> Order | None:
    row = await conn.fetchrow("SELECT * FROM orders WHERE id = $1", order_id)
    if row is None:
        return None
    return _order(row, await _lines(conn, order_id))


async def _lines(conn: Conn, order_id: uuid.UUID) -> tuple[Line, ...]:
    rows = await conn.fetch(
        """SELECT variant_id, product_id, title, sku, unit_price, quantity FROM order_lines
           WHERE order_id = $1 ORDER BY variant_id""",
        order_id,
    )
    return tuple(Line(**dict(r)) for r in rows)


async def parties(
    conn: Conn, order_id: uuid.UUID
) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID | None] | None:
    """(buyer, seller, rider) of an order, or None: what the real-time hub needs to decide who
    may read the `order:{id}` channel (buyer, seller, assigned rider, admins)."""
    row = await conn.fetchrow(
        "SELECT buyer_id, seller_id, rider_id FROM orders WHERE id = $1", order_id
    )
    return None if row is None else (row["buyer_id"], row["seller_id"], row["rider_id"])


async def db_now(conn: Conn) -> datetime:
    now: datetime = await conn.fetchval("SELECT now()")
    return now


async def set_state(
    conn: asyncpg.Connection,
    order_id: uuid.UUID,
    *,
    expected: OrderState,
    new: OrderState,
    stamp: str | None,
) -> asyncpg.Record | None:
    """Move the order from `expected` to `new` if nobody moved it first (the conditional
    UPDATE also takes the row lock for the rest of the transaction). None when it lost."""
    stamp_sql = {"paid_at": ", paid_at = now()", "delivered_at": ", delivered_at = now()"}.get(
        stamp or "", ""
    )
    clear = ", reserved_until = NULL" if expected is OrderState.PENDING_PAYMENT else ""
    row: asyncpg.Record | None = await conn.fetchrow(
        f"""UPDATE orders SET state = $3, updated_at = now(){stamp_sql}{clear}
            WHERE id = $1 AND state = $2 RETURNING *""",
        order_id, expected.value, new.value,
    )
    return row


async def add_event(
    conn: asyncpg.Connection,
    order_id: uuid.UUID,
    *,
    kind: str,
    from_state: str | None,
    to_state: str,
    actor_id: uuid.UUID | None,
    actor_role: str,
    reason: str | None,
    amount: int | None = None,
) -> Event:
    row = await conn.fetchrow(
        """INSERT INTO order_events (order_id, kind, from_state, to_state, actor_id, actor_role,
                                     reason, amount)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *""",
        order_id, kind, from_state, to_state, actor_id, actor_role, reason, amount,
    )
    return _event(row)


async def events_for(conn: Conn, order_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[Event]]:
    rows = await conn.fetch(
        "SELECT * FROM order_events WHERE order_id = ANY($1::uuid[]) ORDER BY order_id, id",
        order_ids,
    )
    out: dict[uuid.UUID, list[Event]] = {i: [] for i in order_ids}
    for r in rows:
        out[r["order_id"]].append(_event(r))
    return out


async def assign_rider(
    conn: asyncpg.Connection, order_id: uuid.UUID, rider_id: uuid.UUID, states: list[str]
) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        """UPDATE orders SET rider_id = $2, updated_at = now()
           WHERE id = $1 AND state = ANY($3::text[]) RETURNING *""",
        order_id, rider_id, states,
    )
    return row


async def mark_settled(conn: asyncpg.Connection, order_id: uuid.UUID) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        """UPDATE orders SET settled_at = now(), updated_at = now()
           WHERE id = $1 AND state = 'delivered' AND settled_at IS NULL RETURNING *""",
        order_id,
    )
    return row


# --- listings and job queues -----------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Scope:
    """Which orders a listing may show: exactly one of the ids, or everything (admins)."""

    buyer_id: uuid.UUID | None = None
    seller_id: uuid.UUID | None = None
    rider_id: uuid.UUID | None = None
    state: str | None = None


async def list_orders(conn: Conn, scope: Scope, *, after: Cursor | None, limit: int) -> list[Order]:
    where: list[str] = ["true"]
    args: list[Any] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    for column in ("buyer_id", "seller_id", "rider_id", "state"):
        value = getattr(scope, column)
        if value is not None:
            where.append(f"{column} = {arg(value)}")
    if after is not None:
        where.append(f"(created_at, id) < ({arg(after.created_at)}, {arg(after.id)})")
    rows = await conn.fetch(
        f"SELECT * FROM orders WHERE {' AND '.join(where)} "
        f"ORDER BY created_at DESC, id DESC LIMIT {arg(limit)}",
        *args,
    )
    return [_order(r) for r in rows]


async def expired_reservations(conn: Conn, limit: int) -> list[uuid.UUID]:
    rows = await conn.fetch(
        """SELECT id FROM orders WHERE state = 'pending_payment' AND reserved_until <= now()
           ORDER BY reserved_until LIMIT $1""",
        limit,
    )
    return [r["id"] for r in rows]


async def due_settlements(conn: Conn, hold_s: int, limit: int) -> list[uuid.UUID]:
    rows = await conn.fetch(
        """SELECT id FROM orders WHERE state = 'delivered' AND settled_at IS NULL
             AND delivered_at <= now() - make_interval(secs => $1)
           ORDER BY delivered_at LIMIT $2""",
        float(hold_s), limit,
    )
    return [r["id"] for r in rows]


async def lock_state(conn: asyncpg.Connection, order_id: uuid.UUID) -> OrderState | None:
    """Lock the order for the caller's transaction (waiting for another holder) and return its
    state; None if there is no such order."""
    value = await conn.fetchval("SELECT state FROM orders WHERE id = $1 FOR UPDATE", order_id)
    return OrderState(value) if value is not None else None


async def lock_if(conn: asyncpg.Connection, order_id: uuid.UUID, condition: str) -> bool:
    """Lock the order when `condition` (constant SQL) still holds and no other process holds
    it; False otherwise. Lets several processes share a job queue without waiting."""
    found = await conn.fetchval(
        f"SELECT true FROM orders WHERE id = $1 AND {condition} FOR UPDATE SKIP LOCKED", order_id
    )
    return bool(found)
