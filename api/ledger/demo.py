"""Demo seed step: the demo buyer starts with money in the wallet."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import asyncpg

from api.ledger import service

if TYPE_CHECKING:
    from api.demo import DemoUsers

DEMO_WALLET_CENTS = 500_00
DEMO_CURRENCY = "USD"


async def fund_demo_buyer(pool: asyncpg.Pool, users: DemoUsers) -> None:
    """Top up the demo buyer once: the transfer id is fixed, so re-running changes nothing."""
    transfer_id = uuid.uuid5(users.buyer.id, "souk-demo-wallet-topup")
    async with pool.acquire() as conn, conn.transaction():
        await service.topup(
            conn, user_id=users.buyer.id, amount=DEMO_WALLET_CENTS, currency=DEMO_CURRENCY,
            transfer_id=transfer_id, metadata={"provider": "demo-seed"},
        )
