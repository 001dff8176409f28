"""Stock-counter SQL on `variants` (on_hand, reserved, sold). Callers own the transaction.

Variant rows are the last locks a transaction takes (after the order row and the ledger
accounts, see `api.orders.store`), one statement per row in ascending variant id: a fixed lock
order, so checkouts, transitions and the background jobs never deadlock each other.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import asyncpg

# (variant id, quantity): an order's lines as the stock counters see them
Units = tuple[uuid.UUID, int]


async def reserve_stock(
    conn: asyncpg.Connection, variant_id: uuid.UUID, quantity: int
) -> int | None:
    """Reserve `quantity` units of a published variant if that many are available. Returns the
    variant's current price, or None when it cannot (the row lock is held until commit, so two
    buyers can never both take the last unit)."""
    price: int | None = await conn.fetchval(
        """UPDATE variants v SET reserved = v.reserved + $2
           FROM products p
           WHERE v.id = $1 AND p.id = v.product_id AND p.status = 'published'
             AND v.on_hand - v.reserved >= $2
           RETURNING v.price""",
        variant_id, quantity,
    )
    return price


async def _apply_lines(conn: asyncpg.Connection, lines: Iterable[Units], sql: str) -> None:
    for variant_id, quantity in sorted(lines):  # one statement per row, in id order
        await conn.execute(sql, variant_id, quantity)


_RELEASE = "UPDATE variants SET reserved = reserved - $2 WHERE id = $1"


async def release_units(conn: asyncpg.Connection, variant_id: uuid.UUID, quantity: int) -> None:
    """Give back `quantity` units reserved without an order (an auction's unit)."""
    await conn.execute(_RELEASE, variant_id, quantity)


async def release_stock(conn: asyncpg.Connection, lines: Iterable[Units]) -> None:
    """An unpaid order's reserved units back on sale."""
    await _apply_lines(conn, lines, _RELEASE)


async def sell_stock(conn: asyncpg.Connection, lines: Iterable[Units]) -> None:
    """A paid order's reserved units sold."""
    await _apply_lines(
        conn, lines,
        """UPDATE variants SET reserved = reserved - $2, on_hand = on_hand - $2, sold = sold + $2
           WHERE id = $1""",
    )


async def restock(conn: asyncpg.Connection, lines: Iterable[Units]) -> None:
    """A refunded order's sold units back on hand."""
    await _apply_lines(
        conn, lines, "UPDATE variants SET on_hand = on_hand + $2, sold = sold - $2 WHERE id = $1"
    )
