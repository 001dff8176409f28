"""Hypothesis state machine: random sequences of top-ups, checkouts (holds), captures,
cancellations (releases), refunds, settlements, payouts, adjustments, idempotent retries and
concurrent bursts, run through the real service functions on the real database and compared
after every step with the reference model in tests/ledger/model.py.

Hypothesis drives rules synchronously, so the test owns a dedicated event loop and an asyncpg
pool bound to it. Each example gets its own currency code, which isolates its accounts (system
accounts included) from earlier examples sharing the schema.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
from hypothesis import HealthCheck
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from api.ledger import service as ledger
from api.ledger import store
from api.ledger.errors import (
    HoldConflict,
    InsufficientFunds,
    PayoutNotPending,
    RefundExceedsCaptured,
)
from core.config import Settings
from core.db import create_pool, migrate_dsn
from core.errors import IdempotencyKeyReused
from tests.ledger.model import LedgerModel

T = TypeVar("T")
FEE_BPS = 750
amounts = st.integers(min_value=1, max_value=5_000)


@dataclass
class Done:
    """A completed call that a retry must replay exactly."""

    call: Callable[..., Awaitable[Any]]
    kwargs: dict[str, Any]
    result: ledger.Transfer


@dataclass
class Env:
    """The event loop and pool the machine's rules run on (set by the test)."""

    loop: asyncio.AbstractEventLoop
    pool: asyncpg.Pool
    codes: Iterator[str]


ENV: list[Env] = []


def run(coro: Coroutine[Any, Any, T]) -> T:
    return ENV[0].loop.run_until_complete(coro)


async def gather(*aws: Awaitable[Any]) -> list[Any]:
    return list(await asyncio.gather(*aws))  # inside the test's loop, not the default one


async def in_tx(fn: Callable[..., Awaitable[T]], **kwargs: Any) -> T:
    async with ENV[0].pool.acquire() as conn, conn.transaction():
        return await fn(conn, **kwargs)


async def ledger_audit(pool: asyncpg.Pool) -> dict[str, Any]:
    return await store.audit(pool)


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.currency = next(ENV[0].codes)
        self.model = LedgerModel(fee_bps=FEE_BPS)
        self.buyers = [uuid.uuid4() for _ in range(3)]
        self.sellers = [uuid.uuid4() for _ in range(2)]
        self.order_ids: list[uuid.UUID] = []
        self.done: list[Done] = []
        self.admin = uuid.uuid4()

    def call(self, fn: Callable[..., Awaitable[Any]], **kwargs: Any) -> Any:
        kwargs.setdefault("transfer_id", uuid.uuid4())
        result = run(in_tx(fn, **kwargs))
        if isinstance(result, ledger.Transfer):
            assert not result.replayed
            assert sum(leg.amount for leg in result.legs) == 0
            self.done.append(Done(fn, kwargs, result))
        return result

    def pick_order(self, index: int) -> uuid.UUID:
        return self.order_ids[index % len(self.order_ids)]

    @initialize()
    def start(self) -> None:
        for buyer in self.buyers:
            self.call(ledger.topup, user_id=buyer, amount=2_000, currency=self.currency)
            self.model.topup(buyer, 2_000)

    @rule(b=st.integers(0, 2), amount=amounts)
    def topup(self, b: int, amount: int) -> None:
        buyer = self.buyers[b]
        self.call(ledger.topup, user_id=buyer, amount=amount, currency=self.currency)
        self.model.topup(buyer, amount)

    @rule(b=st.integers(0, 2), amount=amounts)
    def checkout(self, b: int, amount: int) -> None:
        buyer, order = self.buyers[b], uuid.uuid4()
        try:
            self.call(ledger.hold_for_order, buyer_id=buyer, order_id=order, amount=amount,
                      currency=self.currency)
        except InsufficientFunds:
            assert not self.model.can_hold(buyer, amount)
            return
        assert self.model.can_hold(buyer, amount)
        self.model.hold(buyer, order, amount)
        self.order_ids.append(order)

    @precondition(lambda self: self.order_ids)
    @rule(i=st.integers(min_value=0))
    def capture(self, i: int) -> None:
        order = self.pick_order(i)
        try:
            t = self.call(ledger.capture_hold, order_id=order)
        except HoldConflict:
            assert self.model.orders[order].state != "held"
            return
        assert self.model.orders[order].state == "held"
        assert t.amount == self.model.orders[order].amount
        self.model.capture(order)

    @precondition(lambda self: self.order_ids)
    @rule(i=st.integers(min_value=0))
    def cancel(self, i: int) -> None:
        order = self.pick_order(i)
        result = self.call(ledger.release_hold, order_id=order)
        assert (result is not None) == self.model.release(order)

    @precondition(lambda self: self.order_ids)
    @rule(i=st.integers(min_value=0), amount=amounts,
          mode=st.sampled_from(["all", "one_too_many", "any"]))
    def refund(self, i: int, amount: int, mode: str) -> None:
        order = self.pick_order(i)
        expected = self.model.orders[order]
        if mode == "all" and expected.refundable:
            amount = expected.refundable
        elif mode == "one_too_many":
            amount = expected.refundable + 1
        try:
            self.call(ledger.refund_order, order_id=order, amount=amount, reason="test")
        except RefundExceedsCaptured:
            assert amount > expected.refundable
            return
        assert amount <= expected.refundable
        self.model.refund(order, amount)

    @precondition(lambda self: self.order_ids)
    @rule(i=st.integers(min_value=0), s=st.integers(0, 1))
    def settle(self, i: int, s: int) -> None:
        order, seller = self.pick_order(i), self.sellers[s]
        expected = self.model.orders[order]
        try:
            self.call(ledger.settle_order, order_id=order, seller_id=seller, fee_bps=FEE_BPS)
        except HoldConflict:
            assert expected.state != "captured" or expected.escrow == 0
            return
        assert expected.state == "captured"
        assert expected.escrow > 0
        self.model.settle(order, seller)

    @rule(s=st.integers(0, 1), amount=amounts)
    def payout(self, s: int, amount: int) -> None:
        seller = self.sellers[s]
        try:
            t = self.call(ledger.request_payout, seller_id=seller, amount=amount,
                          currency=self.currency)
        except InsufficientFunds:
            assert self.model.payable.get(seller, 0) < amount
            return
        assert self.model.payable.get(seller, 0) >= amount
        self.model.payout(seller, amount, t.id)

    @precondition(lambda self: self.model.payouts)
    @rule(i=st.integers(min_value=0), fail=st.booleans())
    def resolve_payout(self, i: int, fail: bool) -> None:
        """The bank confirms (paid) or refuses (reversed to the seller) a payout, once."""
        payout_id = list(self.model.payouts)[i % len(self.model.payouts)]
        pending = self.model.payouts[payout_id][2] == "requested"
        if not fail:
            assert run(in_tx(ledger.complete_payout, payout_id=payout_id)) == pending
        else:
            try:
                self.call(ledger.fail_payout, payout_id=payout_id, reason="bank refused")
            except PayoutNotPending:
                assert not pending
                return
            assert pending
        assert self.model.resolve_payout(payout_id, fail) == pending

    @rule(b=st.integers(0, 2), amount=st.integers(-3_000, 3_000).filter(bool))
    def adjust(self, b: int, amount: int) -> None:
        buyer = self.buyers[b]
        try:
            self.call(ledger.adjust_wallet, user_id=buyer, amount=amount,
                      currency=self.currency, reason="correction", admin_id=self.admin)
        except InsufficientFunds:
            assert self.model.available.get(buyer, 0) + amount < 0
            return
        self.model.adjust(buyer, amount)

    @precondition(lambda self: self.done)
    @rule(i=st.integers(min_value=0))
    def retry(self, i: int) -> None:
        """Repeat an earlier call with the same transfer id: the original comes back and
        nothing changes."""
        done = self.done[i % len(self.done)]
        before = run(self.snapshot())
        again = run(in_tx(done.call, **done.kwargs))
        assert again.replayed
        assert (again.id, again.kind, again.legs) == (
            done.result.id, done.result.kind, done.result.legs)
        assert run(self.snapshot()) == before

    @precondition(lambda self: any("amount" in d.kwargs for d in self.done))
    @rule(i=st.integers(min_value=0))
    def reuse_id_with_other_content(self, i: int) -> None:
        candidates = [d for d in self.done if "amount" in d.kwargs]
        done = candidates[i % len(candidates)]
        before = run(self.snapshot())
        changed = {**done.kwargs, "amount": done.kwargs["amount"] + 1}
        try:
            run(in_tx(done.call, **changed))
        except IdempotencyKeyReused:
            pass
        else:
            raise AssertionError("a reused transfer id with other content was accepted")
        assert run(self.snapshot()) == before

    @rule(b=st.integers(0, 2), holds=st.lists(amounts, min_size=2, max_size=5),
          duplicate=st.booleans())
    def concurrent_checkouts(self, b: int, holds: list[int], duplicate: bool) -> None:
        """Several checkouts race on one wallet (one of them sent twice with the same id
        when `duplicate`): the wallet never overdraws and the duplicate applies once."""
        buyer = self.buyers[b]
        calls = [
            {"buyer_id": buyer, "order_id": uuid.uuid4(), "amount": a,
             "currency": self.currency, "transfer_id": uuid.uuid4()}
            for a in holds
        ]
        if duplicate:
            calls.append(dict(calls[0]))

        async def attempt(kwargs: dict[str, Any]) -> ledger.Transfer | None:
            try:
                return await in_tx(ledger.hold_for_order, **kwargs)
            except InsufficientFunds:
                return None

        results = run(gather(*(attempt(k) for k in calls)))
        available = self.model.available.get(buyer, 0)
        applied = {r.id: r for r in results if r is not None and not r.replayed}
        succeeded_ids = {r.id for r in results if r is not None}
        assert len(applied) == len(succeeded_ids)  # a duplicate never applies twice
        won = [k for k in calls[: len(holds)] if k["transfer_id"] in succeeded_ids]
        spent = sum(k["amount"] for k in won)
        assert spent <= available
        for k in calls[: len(holds)]:
            if k["transfer_id"] not in succeeded_ids:
                # When it was refused, at most `available - spent` could have been left.
                assert k["amount"] > available - spent
        for k in won:
            self.model.hold(buyer, k["order_id"], k["amount"])
            self.order_ids.append(k["order_id"])
            self.done.append(Done(ledger.hold_for_order,
                                  {x: v for x, v in k.items()}, applied[k["transfer_id"]]))

    @precondition(lambda self: self.order_ids)
    @rule(picks=st.lists(st.integers(min_value=0), min_size=2, max_size=5, unique=True))
    def concurrent_order_flows(self, picks: list[int]) -> None:
        """Captures, cancellations and a top-up at once, on shared wallets."""
        orders = list(dict.fromkeys(self.pick_order(i) for i in picks))

        async def step(n: int, order: uuid.UUID) -> tuple[str, Any]:
            try:
                if n % 2:
                    return "capture", await in_tx(ledger.capture_hold, order_id=order,
                                                  transfer_id=uuid.uuid4())
                return "release", await in_tx(ledger.release_hold, order_id=order,
                                              transfer_id=uuid.uuid4())
            except HoldConflict:
                return "conflict", None

        buyer = self.model.orders[orders[0]].buyer
        outcomes = run(gather(
            *(step(n, o) for n, o in enumerate(orders)),
            in_tx(ledger.topup, user_id=buyer, amount=100, currency=self.currency,
                  transfer_id=uuid.uuid4()),
        ))
        self.model.topup(buyer, 100)
        for order, (what, result) in zip(orders, outcomes, strict=False):
            state = self.model.orders[order].state
            if what == "capture":
                assert state == "held"
                self.model.capture(order)
            elif what == "release":
                assert (result is not None) == (state == "held")
                self.model.release(order)
            else:
                assert state != "held"

    async def snapshot(self) -> list[tuple[Any, ...]]:
        rows = await ENV[0].pool.fetch(
            "SELECT kind, owner_id, balance FROM ledger_accounts WHERE currency = $1 "
            "ORDER BY kind, owner_id",
            self.currency,
        )
        count = await ENV[0].pool.fetchval("SELECT count(*) FROM ledger_transfers")
        return [tuple(r) for r in rows] + [("transfers", count)]

    @invariant()
    def matches_model_and_ledger_is_sound(self) -> None:
        run(self.check())

    async def check(self) -> None:
        m, cur = self.model, self.currency
        for buyer in self.buyers:
            view = await ledger.wallet(ENV[0].pool, buyer, cur)
            assert view.available >= 0
            assert (view.available, view.held) == (
                m.available.get(buyer, 0), m.held.get(buyer, 0))
        for seller in self.sellers:
            assert await ledger.seller_payable(ENV[0].pool, seller, cur) == m.payable.get(seller, 0)
        for order_id, order in m.orders.items():
            escrow = await ledger.order_escrow(ENV[0].pool, order_id)
            assert escrow == order.escrow
            if order.state == "settled" or order.refunded == order.captured:
                assert escrow == 0
            assert order.refunded <= order.captured
        totals = dict(await ENV[0].pool.fetch(
            "SELECT kind, sum(balance) FROM ledger_accounts WHERE currency = $1 "
            "GROUP BY kind", cur))
        assert totals.get("platform_fees", 0) == m.fees
        assert totals.get("topup_clearing", 0) == -m.topped_up
        assert totals.get("payout_clearing", 0) == m.paid_out
        assert totals.get("adjustments", 0) == -m.adjusted
        assert sum(totals.values()) == 0
        report = await ledger_audit(ENV[0].pool)
        assert report["ok"], report



def test_ledger_matches_reference_model(settings: Settings) -> None:
    loop = asyncio.new_event_loop()
    codes = (
        a + b + c
        for a in "QXZ"
        for b in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
        for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    )
    try:
        loop.run_until_complete(
            migrate_dsn(settings.database_url, schema=settings.database_schema)
        )
        pool = loop.run_until_complete(
            create_pool(settings.database_url, schema=settings.database_schema, min_size=2,
                        max_size=8)
        )
        ENV[:] = [Env(loop, pool, codes)]
        try:
            run_state_machine_as_test(
                LedgerMachine,
                settings=hyp_settings(
                    max_examples=40,
                    stateful_step_count=20,
                    deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
                ),
            )
        finally:
            ENV.clear()
            loop.run_until_complete(pool.close())
    finally:
        loop.close()
