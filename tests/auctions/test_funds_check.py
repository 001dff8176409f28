"""The funds check of a bid batch: the ports' bulk question (one query per batch) agrees with
their one-by-one answer, on the real ledger and on the twin."""

from __future__ import annotations

import uuid

import pytest

from api.auction_ports import LedgerFunds
from api.ledger import service as ledger
from auctions.twins import MemoryFunds
from core.context import Runtime


async def test_the_twin_answers_many_like_one_by_one() -> None:
    funds = MemoryFunds()
    users = [uuid.uuid4() for _ in range(4)]
    for i, u in enumerate(users[:3]):
        funds.credit(u, 100 * (i + 1))
    many = await funds.available_many(None, users, "USD")
    assert many == {u: await funds.available(None, u, "USD") for u in users}
    assert many[users[3]] == 0


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
    bulk = await port.available_many(None, ids, "USD")
    async with rt.pool.acquire() as conn:  # on the caller's connection too
        assert await port.available_many(conn, ids, "USD") == bulk
    for u in ids:  # the ledger's own wallet view, one by one
        assert bulk.get(u, 0) == int((await ledger.wallet(rt.pool, u, "USD")).available)
    assert ids[n] not in bulk  # never funded
