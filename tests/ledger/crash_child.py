"""Child process for the crash tests: runs a money flow and stops mid-transaction, waiting to be
SIGKILLed by the parent test. Usage: python -m tests.ledger.crash_child DSN SCHEMA BUYER ORDER"""

from __future__ import annotations

import asyncio
import sys
import uuid

from api.ledger import service as ledger
from core.db import create_pool


def step_id(order: uuid.UUID, step: str) -> uuid.UUID:
    return uuid.uuid5(order, step)


async def main(dsn: str, schema: str, buyer: uuid.UUID, order: uuid.UUID) -> None:
    pool = await create_pool(dsn, schema=schema, min_size=1, max_size=2)
    async with pool.acquire() as conn:
        async with conn.transaction():
            await ledger.topup(conn, user_id=buyer, amount=5_000, currency="USD",
                               transfer_id=step_id(order, "topup"))
        async with conn.transaction():
            await ledger.hold_for_order(conn, buyer_id=buyer, order_id=order, amount=2_000,
                                        currency="USD", transfer_id=step_id(order, "hold"))
        print("committed", flush=True)
        tx = conn.transaction()
        await tx.start()
        # Capture, then a raw half-transfer (one leg, nothing balancing it yet), then die.
        await ledger.capture_hold(conn, order_id=order, transfer_id=step_id(order, "capture"))
        half = uuid.uuid4()
        await conn.execute(
            "INSERT INTO ledger_transfers (id, kind, request_hash) VALUES ($1, 'adjustment', '')",
            half,
        )
        await conn.execute(
            """INSERT INTO ledger_entries (transfer_id, account_id, amount, balance_after)
               SELECT $1, id, 777, balance + 777 FROM ledger_accounts
               WHERE kind = 'buyer_wallet' AND owner_id = $2""",
            half,
            buyer,
        )
        await conn.execute(
            "UPDATE ledger_accounts SET balance = balance + 777 "
            "WHERE kind = 'buyer_wallet' AND owner_id = $1",
            buyer,
        )
        print(f"mid {conn.get_server_pid()}", flush=True)
        await asyncio.sleep(3600)  # the parent kills us here


if __name__ == "__main__":
    dsn, schema, buyer, order = sys.argv[1:5]
    asyncio.run(main(dsn, schema, uuid.UUID(buyer), uuid.UUID(order)))
