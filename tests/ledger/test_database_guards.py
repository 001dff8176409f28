"""The database itself refuses what would corrupt the ledger, whatever the application does:
direct SQL, bypassing api.ledger."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from api.ledger import service as ledger
from core.context import Runtime
from tests.ledger.helpers import assert_ledger_sound


async def _seed(rt: Runtime) -> uuid.UUID:
    buyer = uuid.uuid4()
    async with rt.pool.acquire() as conn, conn.transaction():
        await ledger.topup(conn, user_id=buyer, amount=1_000, currency="USD",
                           transfer_id=uuid.uuid4())
    return buyer


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_entries SET amount = amount * 2",
        "UPDATE ledger_entries SET balance_after = 0",
        "DELETE FROM ledger_entries",
        "UPDATE ledger_transfers SET kind = 'refund'",
        "UPDATE ledger_transfers SET metadata = '{\"x\": 1}'",
        "DELETE FROM ledger_transfers",
        "TRUNCATE ledger_entries",
        "TRUNCATE ledger_transfers CASCADE",
    ],
)
async def test_updates_and_deletes_of_ledger_rows_fail(rt: Runtime, statement: str) -> None:
    await _seed(rt)
    before = await rt.pool.fetchval("SELECT count(*) FROM ledger_entries")
    with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
        await rt.pool.execute(statement)
    assert await rt.pool.fetchval("SELECT count(*) FROM ledger_entries") == before
    await assert_ledger_sound(rt.pool)


async def test_database_refuses_a_negative_buyer_wallet(rt: Runtime) -> None:
    buyer = await _seed(rt)
    with pytest.raises(asyncpg.CheckViolationError, match="ledger_accounts_non_negative"):
        await rt.pool.execute(
            "UPDATE ledger_accounts SET balance = -1 WHERE kind = 'buyer_wallet' AND owner_id = $1",
            buyer,
        )
    with pytest.raises(asyncpg.CheckViolationError, match="ledger_accounts_non_negative"):
        await rt.pool.execute(
            "INSERT INTO ledger_accounts (kind, owner_id, currency, balance) "
            "VALUES ('order_escrow', $1, 'USD', -5)",
            uuid.uuid4(),
        )
    # A seller payable may go negative (a reversal after payout is a debt, not a corruption).
    await rt.pool.execute(
        "INSERT INTO ledger_accounts (kind, owner_id, currency, balance) "
        "VALUES ('seller_payable', $1, 'USD', -5)",
        uuid.uuid4(),
    )


async def test_database_refuses_an_unbalanced_transfer_at_commit(rt: Runtime) -> None:
    buyer = await _seed(rt)
    account = await rt.pool.fetchval(
        "SELECT id FROM ledger_accounts WHERE kind = 'buyer_wallet' AND owner_id = $1", buyer
    )
    transfer = uuid.uuid4()
    # The refusal comes at COMMIT, after both statements ran: the block must hold them all.
    with pytest.raises(asyncpg.CheckViolationError, match="does not sum to zero"):  # noqa: PT012
        async with rt.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO ledger_transfers (id, kind, request_hash) VALUES ($1, 'topup', '')",
                transfer,
            )
            await conn.execute(
                "INSERT INTO ledger_entries (transfer_id, account_id, amount, balance_after) "
                "VALUES ($1, $2, 100, 1100)",
                transfer,
                account,
            )
    assert await rt.pool.fetchval("SELECT count(*) FROM ledger_transfers WHERE id = $1",
                                  transfer) == 0
    await assert_ledger_sound(rt.pool)


async def test_audit_detects_a_stored_balance_that_drifted(rt: Runtime) -> None:
    buyer = await _seed(rt)
    # Balances are mutable by design (updated with each entry); simulate corruption directly.
    await rt.pool.execute(
        "UPDATE ledger_accounts SET balance = balance + 1 WHERE kind = 'buyer_wallet' "
        "AND owner_id = $1",
        buyer,
    )
    from api.ledger import store

    report = await store.audit(rt.pool)
    assert report["ok"] is False
    assert [m["stored"] - m["recomputed"] for m in report["balance_mismatches"]] == [1]
    assert report["currencies"][0]["sum"] == 1
