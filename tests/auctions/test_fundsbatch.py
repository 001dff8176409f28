"""Coalesced wallet pre-checks: one bulk question per burst, the right answer for each asker,
and the real ledger adapter's bulk query agreeing with its one-by-one answer."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from api.auction_ports import LedgerFunds
from api.ledger import service as ledger
from auctions.fundsbatch import CoalescingFunds
from auctions.twins import MemoryFunds
from core.context import Runtime


class BulkTwin(MemoryFunds):
    def __init__(self) -> None:
        super().__init__()
        self.bulk_calls: list[list[uuid.UUID]] = []
        self.fail = False

    async def available_many(self, user_ids: list[uuid.UUID], currency: str) -> dict[uuid.UUID, int]:
        self.bulk_calls.append(user_ids)
        if self.fail:
            raise ConnectionError("ledger down")
        return {u: await self.available(None, u, currency) for u in user_ids
                if u in self.balances}


async def test_a_burst_is_one_bulk_question() -> None:
    funds = BulkTwin()
    users = [uuid.uuid4() for _ in range(30)]
    for i, u in enumerate(users[:20]):
        funds.credit(u, 100 * (i + 1))
    gate = CoalescingFunds(funds)
    asked = users + users[:5]  # the same buyer twice in one burst
    answers = await asyncio.gather(*(gate.available(u, "USD") for u in asked))
    assert answers == [100 * (i + 1) if i < 20 else 0 for i in range(30)] + [
        100 * (i + 1) for i in range(5)]
    assert len(funds.bulk_calls) == 1 and sorted(funds.bulk_calls[0]) == sorted(users)
    await gate.available(users[0], "USD")  # a later turn is a new question
    assert len(funds.bulk_calls) == 2


async def test_failure_reaches_every_asker_and_ports_without_bulk_still_work() -> None:
    funds = BulkTwin()
    funds.fail = True
    gate = CoalescingFunds(funds)
    results = await asyncio.gather(*(gate.available(uuid.uuid4(), "USD") for _ in range(3)),
                                   return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    plain = MemoryFunds()
    u = uuid.uuid4()
    plain.credit(u, 700)
    assert await CoalescingFunds(plain).available(u, "USD") == 700


@pytest.mark.parametrize("n", [1, 25])
async def test_ledger_bulk_matches_wallet(rt: Runtime, n: int) -> None:
    emails = [f"{uuid.uuid4().hex}@funds.test" for _ in range(n + 1)]
    rows = await rt.pool.fetch(
        """INSERT INTO users (email, email_normalized, password_hash, display_name, role)
           SELECT e, e, 'unusable', 'B', 'buyer' FROM unnest($1::text[]) AS t(e) RETURNING id""",
        emails)
    ids = [r["id"] for r in rows]
    async with rt.pool.acquire() as conn, conn.transaction():
        for i, u in enumerate(ids[:n]):
            await ledger.topup(conn, user_id=u, amount=1_000 + i, currency="USD",
                               transfer_id=uuid.uuid4())
    port = LedgerFunds(rt.pool)
    bulk = await port.available_many(ids, "USD")
    for u in ids:
        assert bulk.get(u, 0) == await port.available(None, u, "USD")
    assert ids[n] not in bulk  # never funded
