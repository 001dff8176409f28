"""Catalog storage in PostgreSQL. Functions take a connection or pool; callers own transactions."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

import asyncpg

from api.paging import Cursor

Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool


@dataclass(frozen=True, slots=True)
class Variant:
    id: uuid.UUID
    product_id: uuid.UUID
    sku: str
    price: int
    on_hand: int
    reserved: int
    sold: int

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


@dataclass(frozen=True, slots=True)
class Product:
    id: uuid.UUID
    seller_id: uuid.UUID
    title: str
    description: str
    currency: str
    status: str
    images: list[str]
    min_price: int
    created_at: datetime
    updated_at: datetime
    variants: list[Variant]


@dataclass(frozen=True, slots=True)
class VariantRef:
    """A variant as other domains see it: who sells it, in which currency, under which title,
    and whether its product is published."""

    id: uuid.UUID
    product_id: uuid.UUID
    seller_id: uuid.UUID
    currency: str
    title: str
    sku: str
    published: bool


class DuplicateSku(Exception):
    pass


_PRODUCT_COLS = (
    "p.id, p.seller_id, p.title, p.description, p.currency, p.status, p.images, p.min_price, "
    "p.created_at, p.updated_at"
)


def _variant(row: asyncpg.Record) -> Variant:
    return Variant(
        row["id"], row["product_id"], row["sku"], row["price"], row["on_hand"], row["reserved"],
        row["sold"],
    )


async def _with_variants(conn: Conn, rows: list[asyncpg.Record]) -> list[Product]:
    if not rows:
        return []
    ids = [r["id"] for r in rows]
    vrows = await conn.fetch(
        """SELECT id, product_id, sku, price, on_hand, reserved, sold FROM variants
           WHERE product_id = ANY($1::uuid[]) ORDER BY created_at, sku""",
        ids,
    )
    by_product: dict[uuid.UUID, list[Variant]] = {i: [] for i in ids}
    for v in vrows:
        by_product[v["product_id"]].append(_variant(v))
    return [
        Product(
            r["id"], r["seller_id"], r["title"], r["description"], r["currency"], r["status"],
            list(r["images"]), r["min_price"], r["created_at"], r["updated_at"],
            by_product[r["id"]],
        )
        for r in rows
    ]


async def _refresh_prices(conn: Conn, product_id: uuid.UUID) -> None:
    await conn.execute(
        """UPDATE products p SET min_price = s.lo, max_price = s.hi, updated_at = now()
           FROM (SELECT min(price) AS lo, max(price) AS hi FROM variants WHERE product_id = $1) s
           WHERE p.id = $1""",
        product_id,
    )


async def create_product(
    conn: asyncpg.Connection,
    *,
    seller_id: uuid.UUID,
    title: str,
    description: str,
    currency: str,
    status: str,
    images: list[str],
    variants: list[tuple[str, int, int]],
) -> Product:
    """Insert a product with its (sku, price, stock) variants, in the caller's transaction."""
    pid: uuid.UUID = await conn.fetchval(
        """INSERT INTO products (seller_id, title, description, currency, status, images)
           VALUES ($1, $2, $3, $4, $5, $6) RETURNING id""",
        seller_id, title.strip(), description, currency, status, images,
    )
    await conn.executemany(
        "INSERT INTO variants (product_id, sku, price, on_hand) VALUES ($1, $2, $3, $4)",
        [(pid, sku, price, stock) for sku, price, stock in variants],
    )
    await _refresh_prices(conn, pid)
    product = await get_product(conn, pid)
    assert product is not None
    return product


async def get_product(conn: Conn, product_id: uuid.UUID) -> Product | None:
    rows = await conn.fetch(f"SELECT {_PRODUCT_COLS} FROM products p WHERE p.id = $1", product_id)
    found = await _with_variants(conn, list(rows))
    return found[0] if found else None


_VARIANT_REF_SQL = """SELECT v.id, v.product_id, p.seller_id, p.currency, p.title, v.sku,
                             p.status = 'published' AS published
                      FROM variants v JOIN products p ON p.id = v.product_id"""


def _variant_ref(row: asyncpg.Record | None) -> VariantRef | None:
    if row is None:
        return None
    return VariantRef(row["id"], row["product_id"], row["seller_id"], row["currency"],
                      row["title"], row["sku"], row["published"])


async def find_variant(conn: Conn, variant_id: uuid.UUID) -> VariantRef | None:
    """The variant with its product's seller, currency, title and status; None if unknown.
    The one variant lookup for checkout, the cart and auctions."""
    return _variant_ref(await conn.fetchrow(f"{_VARIANT_REF_SQL} WHERE v.id = $1", variant_id))


async def first_variant_in_stock(conn: Conn, seller_id: uuid.UUID) -> VariantRef | None:
    """The seller's first variant (oldest product, then by SKU) of a published product with a
    unit not on hold; None when the seller has none."""
    return _variant_ref(await conn.fetchrow(
        f"""{_VARIANT_REF_SQL}
            WHERE p.seller_id = $1 AND p.status = 'published' AND v.on_hand > v.reserved
            ORDER BY p.created_at, v.sku LIMIT 1""",
        seller_id,
    ))


async def update_product(
    conn: Conn, product_id: uuid.UUID, seller_id: uuid.UUID, changes: dict[str, Any]
) -> bool:
    """Apply allow-listed `changes` (title, description, images, status) to the seller's own
    product. False if it is not theirs."""
    allowed = {"title", "description", "images", "status"}
    cols = [c for c in changes if c in allowed]
    sets = ", ".join(f"{c} = ${i + 3}" for i, c in enumerate(cols))
    sql = f"UPDATE products SET {sets + ', ' if sets else ''}updated_at = now() " \
        "WHERE id = $1 AND seller_id = $2"
    result: str = await conn.execute(sql, product_id, seller_id, *(changes[c] for c in cols))
    return result.endswith(" 1")


async def add_variant(
    conn: asyncpg.Connection, product_id: uuid.UUID, sku: str, price: int, stock: int
) -> uuid.UUID:
    try:
        vid: uuid.UUID = await conn.fetchval(
            "INSERT INTO variants (product_id, sku, price, on_hand) VALUES ($1, $2, $3, $4) "
            "RETURNING id",
            product_id, sku, price, stock,
        )
    except asyncpg.UniqueViolationError:
        raise DuplicateSku() from None
    await _refresh_prices(conn, product_id)
    return vid


async def update_variant(
    conn: asyncpg.Connection,
    product_id: uuid.UUID,
    variant_id: uuid.UUID,
    *,
    sku: str | None,
    price: int | None,
    stock: int | None,
) -> bool:
    """Change a variant of `product_id`. `stock` sets the units available for sale in one
    conditional statement (on_hand = reserved + stock), so it never races a reservation.
    False when the variant is not on that product."""
    try:
        result: str = await conn.execute(
            """UPDATE variants SET sku = coalesce($3, sku), price = coalesce($4, price),
                      on_hand = CASE WHEN $5::int IS NULL THEN on_hand ELSE reserved + $5 END
               WHERE id = $2 AND product_id = $1""",
            product_id, variant_id, sku, price, stock,
        )
    except asyncpg.UniqueViolationError:
        raise DuplicateSku() from None
    if result.endswith(" 1"):
        await _refresh_prices(conn, product_id)
        return True
    return False


@dataclass(frozen=True, slots=True)
class Search:
    text: str | None = None
    seller_id: uuid.UUID | None = None
    min_price: int | None = None
    max_price: int | None = None
    currency: str | None = None
    owner_id: uuid.UUID | None = None  # set: the owner's own products, drafts included


async def search_products(
    conn: Conn, search: Search, *, after: Cursor | None, limit: int
) -> list[Product]:
    """Newest first. Without `owner_id` only published products are listed."""
    where: list[str] = []
    args: list[Any] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if search.owner_id is not None:
        where.append(f"p.seller_id = {arg(search.owner_id)}")
    else:
        where.append("p.status = 'published'")
    if search.seller_id is not None:
        where.append(f"p.seller_id = {arg(search.seller_id)}")
    if search.currency is not None:
        where.append(f"p.currency = {arg(search.currency)}")
    if search.text is not None:
        where.append(f"p.search @@ websearch_to_tsquery('simple', {arg(search.text)})")
    if search.min_price is not None or search.max_price is not None:
        low = arg(search.min_price if search.min_price is not None else 0)
        high = arg(search.max_price if search.max_price is not None else 2**62)
        where.append(
            f"EXISTS (SELECT 1 FROM variants v WHERE v.product_id = p.id "
            f"AND v.price BETWEEN {low} AND {high})"
        )
    if after is not None:
        where.append(f"(p.created_at, p.id) < ({arg(after.created_at)}, {arg(after.id)})")
    sql = (
        f"SELECT {_PRODUCT_COLS} FROM products p WHERE {' AND '.join(where)} "
        f"ORDER BY p.created_at DESC, p.id DESC LIMIT {arg(limit)}"
    )
    rows = await conn.fetch(sql, *args)
    return await _with_variants(conn, list(rows))
