"""The rules of one sequenced batch (auctions/batch.py) and the payment-window rule
(engine.payment_refused), pure: no I/O, time as an argument."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import pytest

from auctions import engine
from auctions.batch import (
    ACCEPTED,
    DUPLICATE,
    BidAck,
    WalletCache,
    answer_code,
    decide,
    replayed,
)
from auctions.errors import BidTooLow, InsufficientFunds
from auctions.model import BidKind, BidRecord, IncrementTable, PaymentState, Rules, new_auction
from core.errors import AppError, IdempotencyKeyReused, RateLimited

SELLER = uuid.UUID(int=1)
A, B = uuid.UUID(int=10), uuid.UUID(int=11)
T0 = 1_700_000_000_000


@dataclass
class Req:
    bidder: uuid.UUID
    amount: int
    kind: BidKind = BidKind.MAX
    bid_id: uuid.UUID = field(default_factory=uuid.uuid4)
    refused: str | None = None
    refusal: AppError | None = None


def live() -> engine.Auction:
    rules = Rules(auction_id=uuid.UUID(int=99), seller_id=SELLER, currency="USD",
                  start_price=1_000, starts_at=T0, duration_ms=30_000, soft_close_ms=10_000,
                  increments=IncrementTable(((0, 100),)), buy_now_price=5_000)
    return engine.open_if_due(new_auction(rules), T0)


def test_accepts_in_arrival_order_from_the_state_each_bid_left() -> None:
    a1, b1 = Req(A, 1_000), Req(B, 1_500)
    d = decide(live(), [a1, b1], {}, set(), T0 + 1)
    assert [r.seq for r in d.records] == [1, 2]
    assert d.state.leader == B and d.state.price == 1_100  # B's max beats A's by one step
    assert [t.outcome for t in d.attempts] == [ACCEPTED, ACCEPTED]
    assert d.changed and not d.closed
    acks = [answer for _, answer in d.answers]
    assert isinstance(acks[0], BidAck) and isinstance(acks[1], BidAck)
    assert acks[1].leading and acks[1].seq == 2 and acks[1].price == 1_100
    assert d.outcomes() == {ACCEPTED: 2}


def test_a_refused_bid_is_only_audited_and_answered_with_its_refusal() -> None:
    limited = RateLimited(3)
    r = Req(A, 1_000, refused=limited.code, refusal=limited)
    audit_only = Req(B, 1_000, refused="bid_queue_full")
    d = decide(live(), [r, audit_only], {}, set(), T0 + 1)
    assert not d.records and not d.changed and not d.events
    assert [(t.outcome, t.seq) for t in d.attempts] == [("rate_limited", None),
                                                          ("bid_queue_full", None)]
    assert d.answers == [(r, limited)]  # the audit-only row has nobody waiting


def test_short_of_funds_refuses_before_the_engine() -> None:
    poor, rich = Req(A, 1_000), Req(B, 1_000)
    d = decide(live(), [poor, rich], {}, {id(poor)}, T0 + 1)
    assert isinstance(d.answers[0][1], InsufficientFunds)
    assert [t.outcome for t in d.attempts] == [InsufficientFunds.code, ACCEPTED]
    assert d.state.leader == B


def test_an_engine_refusal_loses_its_traceback() -> None:
    first = Req(A, 2_000)
    low = Req(B, 1_000, kind=BidKind.EXACT)
    d = decide(live(), [first, low], {}, set(), T0 + 1)
    refusal = d.answers[1][1]
    assert isinstance(refusal, BidTooLow) and refusal.__traceback__ is None
    assert d.attempts[1].outcome == BidTooLow.code


def test_a_retry_inside_the_batch_and_across_batches_is_answered_as_the_first() -> None:
    bid = Req(A, 1_000)
    again = Req(A, 1_000, bid_id=bid.bid_id)
    known: dict[tuple[uuid.UUID, uuid.UUID], BidRecord] = {}
    d = decide(live(), [bid, again], known, set(), T0 + 1)
    first, second = d.answers[0][1], d.answers[1][1]
    assert isinstance(first, BidAck) and isinstance(second, BidAck)
    assert second.replayed and second.seq == first.seq and len(d.records) == 1
    assert [(t.outcome, t.seq) for t in d.attempts] == [(ACCEPTED, 1), (DUPLICATE, 1)]
    # the next batch reads the stored bid back as `known`
    later = decide(d.state, [Req(A, 1_000, bid_id=bid.bid_id)], known, set(), T0 + 2)
    assert not later.records and not later.changed


def test_a_reused_key_is_refused_and_audited_with_the_first_seq() -> None:
    bid = Req(A, 1_000)
    d = decide(live(), [bid], {}, set(), T0 + 1)
    known = {(A, bid.bid_id): d.records[0]}
    other = decide(d.state, [Req(A, 3_000, bid_id=bid.bid_id)], known, set(), T0 + 2)
    assert isinstance(other.answers[0][1], IdempotencyKeyReused)
    assert (other.attempts[0].outcome, other.attempts[0].seq) == ("idempotency_key_reused", 1)


@pytest.mark.parametrize(("kind", "amount", "same"), [
    (BidKind.EXACT, 1_000, True),
    (BidKind.EXACT, 1_100, False),
    (BidKind.NEXT, 9_999, True),  # a one-tap bid was recorded as EXACT; its amount resolved
    (BidKind.MAX, 1_000, False),  # another kind
])
def test_replayed_equivalence(kind: BidKind, amount: int, same: bool) -> None:
    rec = BidRecord(seq=4, bidder=A, bid_id=uuid.uuid4(), kind=BidKind.EXACT, amount=1_000,
                    at=T0, price_after=1_000, leader_after=A, ends_at_after=T0 + 30_000)
    answer = replayed(rec, kind, amount)
    if same:
        assert answer == BidAck(seq=4, amount=1_000, price=1_000, ends_at=T0 + 30_000,
                                leading=True, replayed=True)
    else:
        assert isinstance(answer, IdempotencyKeyReused)


def test_buy_now_closes_the_auction_in_the_batch() -> None:
    d = decide(live(), [Req(A, 0, kind=BidKind.BUY_NOW), Req(B, 9_000)], {}, set(), T0 + 1)
    assert d.closed and d.changed
    assert d.attempts[0].outcome == ACCEPTED
    assert d.attempts[1].outcome == "auction_not_open"


def test_answer_code() -> None:
    assert answer_code(BidTooLow(1_100)) == "bid_too_low"
    assert answer_code(RuntimeError()) == "internal_error"


def test_wallet_cache_trusts_a_recent_covering_balance_only() -> None:
    cache = WalletCache(1.0)
    assert not cache.covers(A, 100, 10.0)  # never read
    cache.learn([(A, 500), (B, 50)], 10.0)
    assert cache.covers(A, 500, 10.5)
    assert not cache.covers(A, 501, 10.5)  # does not cover: the ledger is read again
    assert not cache.covers(B, 100, 10.5)
    assert not cache.covers(A, 100, 11.0)  # too old


def test_wallet_cache_with_no_ttl_never_trusts_and_stays_bounded() -> None:
    off = WalletCache(0.0)
    off.learn([(A, 10**9)], 1.0)
    assert not off.covers(A, 1, 1.0)
    small = WalletCache(5.0, max_size=2)
    small.learn([(uuid.UUID(int=i), 1) for i in range(3)], 1.0)
    small.learn([(A, 1)], 1.0)  # over the bound: starts again
    assert small.covers(A, 1, 1.0) and not small.covers(uuid.UUID(int=0), 1, 1.0)


@pytest.mark.parametrize(("due_at", "now", "expected"), [
    (None, T0 + 899_999, (PaymentState.AWAITING, T0 + 900_000)),
    (None, T0 + 900_000, (PaymentState.FAILED, T0 + 900_000)),
    (T0 + 5_000, T0 + 4_999, (PaymentState.AWAITING, T0 + 5_000)),  # a due time once set stays
    (T0 + 5_000, T0 + 5_000, (PaymentState.FAILED, T0 + 5_000)),
])
def test_payment_window(due_at: int | None, now: int,
                        expected: tuple[PaymentState, int]) -> None:
    assert engine.payment_refused(T0, due_at, now, 900_000) == expected
