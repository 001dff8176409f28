"""Load-test setup helper: fund buyer wallets straight through the ledger (no payment provider
round trip), so benchmarks start with money in place."""

from __future__ import annotations

import uuid

from api.ledger import service as ledger
from core.db import create_pool


async def fund_wallets(
    dsn: str, schema: str, buyers: list[str], *, amount: int, currency: str = "USD"
) -> None:
    pool = await create_pool(dsn, schema=schema, min_size=1, max_size=1)
    try:
        for buyer in buyers:
            async with pool.acquire() as conn, conn.transaction():
                await ledger.topup(conn, user_id=uuid.UUID(buyer), amount=amount,
                                   currency=currency, transfer_id=uuid.uuid4())
    finally:
        await pool.close()
