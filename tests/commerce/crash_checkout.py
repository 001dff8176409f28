"""Helper process for the crash test: runs a real checkout transaction and stops dead in the
middle of it (after the orders and the wallet hold are written, before the stock is reserved),
printing HELD, until the test SIGKILLs it. Not a test module itself.

Usage: python -m tests.commerce.crash_checkout <dsn> <schema> <buyer_id>
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from typing import Any

from api.checkout import service
from api.stock import store
from core import db


async def main(dsn: str, schema: str, buyer_id: str) -> None:
    real_reserve = store.reserve_stock

    async def reserve_then_freeze(*args: Any, **kwargs: Any) -> int | None:
        print("HELD", flush=True)  # orders, events, outbox rows and the hold are written
        await asyncio.sleep(3600)
        return await real_reserve(*args, **kwargs)

    service.stock.reserve_stock = reserve_then_freeze  # type: ignore[assignment]
    pool = await db.create_pool(dsn, schema=schema, min_size=1, max_size=1)
    async with pool.acquire() as conn, conn.transaction():
        await service.place_orders(conn, buyer_id=uuid.UUID(buyer_id), reservation_ttl_s=600)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
