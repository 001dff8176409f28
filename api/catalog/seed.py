"""Demo catalog: a few published products with variants and stock for the demo seller."""

from __future__ import annotations

import uuid

import asyncpg

from api.catalog import store

# (title, description, image, [(sku, price in cents, stock)])
DEMO_PRODUCTS: list[tuple[str, str, str, list[tuple[str, int, int]]]] = [
    ("Vintage brass lamp", "1960s table lamp, rewired.",
     "https://images.demo.souk.dev/lamp.jpg",
     [("LAMP-GOLD", 8_900, 3), ("LAMP-SILVER", 9_400, 2)]),
    ("Hand-woven silk scarf", "Damascus silk, 180 x 70 cm.",
     "https://images.demo.souk.dev/scarf.jpg",
     [("SCARF-RED", 3_500, 10), ("SCARF-BLUE", 3_500, 10), ("SCARF-GREEN", 3_800, 5)]),
    ("Flash drop: signed vinyl", "Five signed copies, one per buyer.",
     "https://images.demo.souk.dev/vinyl.jpg", [("VINYL-SIGNED", 4_900, 5)]),
]


async def seed_demo_catalog(pool: asyncpg.Pool, seller_id: uuid.UUID, currency: str) -> int:
    """Create the demo products the seller does not have yet (matched by title). Idempotent and
    safe when several processes seed at once. Returns how many were created."""
    created = 0
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('souk-demo-catalog'))")
        for title, description, image, variants in DEMO_PRODUCTS:
            exists = await conn.fetchval(
                "SELECT true FROM products WHERE seller_id = $1 AND title = $2", seller_id, title
            )
            if exists:
                continue
            await store.create_product(
                conn, seller_id=seller_id, title=title, description=description,
                currency=currency, status="published", images=[image], variants=variants,
            )
            created += 1
    return created
