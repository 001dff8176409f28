"""Group commit (api.ledger.batching rules, api.ledger.batcher against real PostgreSQL): each
request is decided as if posted alone in arrival order, and every ledger invariant holds."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from api.ledger import rules
from api.ledger.batcher import LedgerBatcher
from api.ledger.batching import Outcome, Request, accounts_to_lock, decide
from api.ledger.errors import InsufficientFunds
from api.ledger.rules import AccountKey, AccountKind, TransferKind
from core import db
from core.config import Settings
from core.context import Runtime
from core.errors import IdempotencyKeyReused
from tests.ledger.helpers import assert_ledger_sound

USD = "USD"


def debit(user: uuid.UUID, amount: int, tid: uuid.UUID | None = None) -> Request:
    """An admin correction taking `amount` off the wallet (a debit that can be refused)."""
    digest = rules.fingerprint(TransferKind.ADJUSTMENT, {"user": user, "amount": -amount})
    return Request(tid or uuid.uuid4(), TransferKind.ADJUSTMENT, digest,
                   tuple(rules.adjustment_legs(user, -amount, USD)))


def credit(user: uuid.UUID, amount: int, tid: uuid.UUID | None = None) -> Request:
    digest = rules.fingerprint(TransferKind.TOPUP, {"user": user, "amount": amount})
    return Request(tid or uuid.uuid4(), TransferKind.TOPUP, digest,
                   tuple(rules.topup_legs(user, amount, USD)))


def test_decide_posts_in_arrival_order_and_refuses_alone() -> None:
    user = uuid.uuid4()
    wallet = AccountKey(AccountKind.BUYER_WALLET, user, USD)
    same = uuid.uuid4()
    batch = [debit(user, 70), debit(user, 50), credit(user, 40, same), debit(user, 60),
             credit(user, 40, same), credit(user, 41, same)]
    d = decide(batch, {wallet: 100}, {})
    assert d.outcomes == [Outcome.POSTED, Outcome.INSUFFICIENT_FUNDS, Outcome.POSTED,
                          Outcome.POSTED, Outcome.REPLAYED, Outcome.REUSED]
    assert d.balances[wallet] == 10
    assert [e.balance_after for e in d.entries if e.account == wallet] == [30, 70, 10]
    assert [(n.available, n.held) for n in d.notes] == [(30, 0), (70, 0), (10, 0)]
    stored = {batch[0].id: (TransferKind.ADJUSTMENT, batch[0].digest)}
    again = decide(batch[:1], {wallet: 0}, stored)
    assert again.outcomes == [Outcome.REPLAYED] and again.posted == []


def test_accounts_to_lock_reads_the_buyers_held_balance_too() -> None:
    user = uuid.uuid4()
    legs, read = accounts_to_lock([credit(user, 5)])
    assert AccountKey(AccountKind.BUYER_WALLET, user, USD) in legs
    assert read == [AccountKey(AccountKind.BUYER_HELD, user, USD)]


def test_a_request_whose_legs_do_not_balance_is_refused_when_built() -> None:
    user = uuid.uuid4()
    legs = (rules.Leg(AccountKey(AccountKind.BUYER_WALLET, user, USD), 5),
            rules.Leg(rules.system_account(AccountKind.ADJUSTMENTS, USD, user), -4))
    with pytest.raises(rules.LedgerRuleError):
        Request(uuid.uuid4(), TransferKind.ADJUSTMENT, b"x", legs)


async def test_one_hot_wallet_never_goes_negative_and_exactly_what_fits_posts(
    rt: Runtime,
) -> None:
    user = uuid.uuid4()
    batcher = LedgerBatcher(rt.pool, max_batch=64, writers=2)
    try:
        await batcher.topup(user_id=user, amount=1_000, currency=USD, transfer_id=uuid.uuid4())
        results = await asyncio.gather(*(batcher.post(debit(user, 10)) for _ in range(150)),
                                       return_exceptions=True)
    finally:
        await batcher.aclose()
    posted = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, InsufficientFunds)]
    assert (len(posted), len(refused)) == (100, 50)
    assert batcher.batches < 100  # they were batched, not posted one by one
    assert sorted(t.leg(AccountKind.BUYER_WALLET).balance_after  # type: ignore[union-attr]
                  for t in posted) == list(range(0, 1_000, 10))
    view = await rt.pool.fetchval(
        "SELECT balance FROM ledger_accounts WHERE kind = 'buyer_wallet' AND owner_id = $1",
        user)
    assert view == 0
    await assert_ledger_sound(rt.pool)


async def test_ids_post_once_across_batches_and_processes(
    rt: Runtime, settings: Settings,
) -> None:
    """Two batchers on two pools (two server processes) race the same transfer ids."""
    other = await db.create_pool(settings.database_url, schema=settings.database_schema,
                                 min_size=1, max_size=4)
    one, two = LedgerBatcher(rt.pool, max_batch=16), LedgerBatcher(other, max_batch=16)
    users = [uuid.uuid4() for _ in range(5)]
    ids = [uuid.uuid4() for _ in range(60)]
    try:
        results = await asyncio.gather(*(
            b.topup(user_id=users[i % 5], amount=7, currency=USD, transfer_id=tid)
            for i, tid in enumerate(ids) for b in (one, two)))
        with pytest.raises(IdempotencyKeyReused):
            await one.topup(user_id=users[0], amount=8, currency=USD, transfer_id=ids[0])
    finally:
        await one.aclose()
        await two.aclose()
        await other.close()
    assert sorted(r.replayed for r in results) == [False] * 60 + [True] * 60
    assert await rt.pool.fetchval("SELECT count(*) FROM ledger_transfers") == 60
    total = await rt.pool.fetchval(
        "SELECT sum(balance) FROM ledger_accounts WHERE kind = 'buyer_wallet'")
    assert total == 60 * 7
    events = await rt.pool.fetchval(
        "SELECT count(*) FROM outbox WHERE topic = 'wallet.changed'")
    assert events == 60
    await assert_ledger_sound(rt.pool)
