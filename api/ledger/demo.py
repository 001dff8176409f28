"""Demo seed step: the demo buyer starts with money in the wallet."""

from __future__ import annotations

import uuid

import asyncpg

from api.ledger import service

DEMO_WALLET_CENTS = 500_00
DEMO_CURRENCY = "USD"


async def fund_demo_buyer(pool: asyncpg.Pool, buyer_id: uuid.UUID) -> None:
    """Top up the demo buyer once: the transfer id is fixed, so re-running changes nothing.
    (Takes the buyer's id, not api.demo's DemoUsers: the seed imports this, not the reverse.)"""
    transfer_id = uuid.uuid5(buyer_id, "souk-demo-wallet-topup")
    async with pool.acquire() as conn, conn.transaction():
        await service.topup(
            conn, user_id=buyer_id, amount=DEMO_WALLET_CENTS, currency=DEMO_CURRENCY,
            transfer_id=transfer_id, metadata={"provider": "demo-seed"},
        )
