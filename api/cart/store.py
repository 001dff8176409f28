"""Cart SQL."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TypeAlias

import asyncpg

Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool


@dataclass(frozen=True, slots=True)
class CartLine:
    variant_id: uuid.UUID
    product_id: uuid.UUID
    seller_id: uuid.UUID
    title: str
    sku: str
    price: int
    currency: str
    quantity: int
    available: int
    published: bool


_LINES_SQL = """
    SELECT c.variant_id, v.product_id, p.seller_id, p.title, v.sku, v.price, p.currency,
           c.quantity, v.on_hand - v.reserved AS available, p.status = 'published' AS published
    FROM cart_items c
    JOIN variants v ON v.id = c.variant_id
    JOIN products p ON p.id = v.product_id
    WHERE c.buyer_id = $1
    ORDER BY c.added_at, c.variant_id"""


async def lines(conn: Conn, buyer_id: uuid.UUID, *, lock: bool = False) -> list[CartLine]:
    """The buyer's cart. `lock=True` (inside a transaction) locks the cart rows only — never the
    variant rows, which checkout locks last — so two checkouts of one cart serialise."""
    sql = _LINES_SQL + (" FOR UPDATE OF c" if lock else "")
    rows = await conn.fetch(sql, buyer_id)
    return [CartLine(**dict(r)) for r in rows]


async def add(
    conn: asyncpg.Connection, buyer_id: uuid.UUID, variant_id: uuid.UUID, quantity: int,
    *, max_quantity: int,
) -> None:
    await conn.execute(
        """INSERT INTO cart_items (buyer_id, variant_id, quantity) VALUES ($1, $2, $3)
           ON CONFLICT (buyer_id, variant_id)
           DO UPDATE SET quantity = least(cart_items.quantity + excluded.quantity, $4)""",
        buyer_id, variant_id, quantity, max_quantity,
    )


async def count(conn: Conn, buyer_id: uuid.UUID) -> int:
    n: int = await conn.fetchval("SELECT count(*) FROM cart_items WHERE buyer_id = $1", buyer_id)
    return n


async def remove(conn: Conn, buyer_id: uuid.UUID, variant_id: uuid.UUID) -> bool:
    result: str = await conn.execute(
        "DELETE FROM cart_items WHERE buyer_id = $1 AND variant_id = $2", buyer_id, variant_id
    )
    return result.endswith(" 1")


async def clear(conn: Conn, buyer_id: uuid.UUID) -> None:
    await conn.execute("DELETE FROM cart_items WHERE buyer_id = $1", buyer_id)
