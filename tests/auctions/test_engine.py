"""The auction rules, one by one, on the pure engine (no I/O, time as an argument)."""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest

from auctions import engine
from auctions.errors import (
    AuctionNotOpen,
    BidTooLow,
    BuyNowUnavailable,
    InvalidAuctionAction,
    SellerCannotBid,
)
from auctions.model import (
    Auction,
    Bid,
    BidAccepted,
    BidKind,
    BidRecord,
    BidVoided,
    Cancelled,
    Closed,
    Extended,
    IncrementTable,
    Outcome,
    Rules,
    State,
    new_auction,
)

SELLER = uuid.UUID(int=1)
A, B, C = uuid.UUID(int=10), uuid.UUID(int=11), uuid.UUID(int=12)
T0 = 1_700_000_000_000
STEPS = IncrementTable(((0, 100), (3_000, 200), (5_000, 300), (10_000, 500)))


def make(**kw: object) -> Auction:
    base = dict(
        auction_id=uuid.UUID(int=99), seller_id=SELLER, currency="USD", start_price=1_000,
        starts_at=T0, duration_ms=30_000, soft_close_ms=10_000, increments=STEPS,
    )
    base.update(kw)
    return new_auction(Rules(**base))  # type: ignore[arg-type]


class Run:
    """Applies bids in order, keeping the records (for replay checks)."""

    def __init__(self, auction: Auction) -> None:
        self.a = auction
        self.records: list[BidRecord] = []
        self.events: list[object] = []

    def bid(self, who: uuid.UUID, amount: int, kind: BidKind = BidKind.MAX,
            at: int = T0 + 1) -> Auction:
        placed = engine.place_bid(self.a, Bid(who, amount, kind), at)
        self.a = placed.state
        self.records.append(placed.record)
        self.events.extend(placed.events)
        return self.a


def test_first_max_bid_opens_at_start_price_and_proxy_resolves() -> None:
    r = Run(make())
    a = r.bid(A, 5_000)
    assert (a.price, a.leader, a.seq, a.state) == (1_000, A, 1, State.OPEN)
    # B's max 3,000 loses to A's 5,000: A's proxy answers one increment above B (3,000 + 200).
    a = r.bid(B, 3_000)
    assert (a.price, a.leader, a.seq) == (3_200, A, 2)
    # C's max 8,000 beats A: one increment above A's max (5,000 + 300), capped at C's max.
    a = r.bid(C, 8_000)
    assert (a.price, a.leader, a.leader_max) == (5_300, C, 8_000)


def test_price_capped_at_leaders_max() -> None:
    r = Run(make())
    r.bid(A, 5_000)
    a = r.bid(B, 4_950)  # 4,950 + 200 = 5,150 > A's 5,000 → capped at 5,000
    assert (a.price, a.leader) == (5_000, A)
    r = Run(make())
    r.bid(A, 5_000)
    r.bid(B, 4_000)  # A defends at 4,200
    a = r.bid(C, 5_100)  # beats A by less than one increment (5,300): price = C's max
    assert (a.price, a.leader) == (5_100, C)


def test_equal_maximums_go_to_the_earlier_bid() -> None:
    r = Run(make())
    r.bid(A, 4_000)
    a = r.bid(B, 4_000)
    assert (a.leader, a.price) == (A, 4_000)


def test_raising_own_max_never_bids_against_yourself() -> None:
    r = Run(make())
    r.bid(A, 2_000)
    r.bid(B, 1_500)  # A defends at 1,600
    before = r.a.price
    a = r.bid(A, 9_000)
    assert (a.price, a.leader, a.leader_max, a.seq) == (before, A, 9_000, 3)
    # An exact or one-tap bid by the leader is only a raise of the maximum too.
    a = r.bid(A, 9_500, BidKind.EXACT)
    assert (a.price, a.leader_max) == (before, 9_500)
    with pytest.raises(BidTooLow):  # lowering (or repeating) your maximum is refused
        engine.place_bid(a, Bid(A, 9_500), T0 + 2)


def test_raise_lifts_a_price_capped_by_the_old_maximum() -> None:
    # B matched A's maximum: A keeps the lead at 2,000 (capped). When A raises, the price
    # becomes one increment above B's maximum (the second-highest), no more.
    r = Run(make())
    r.bid(A, 2_000)
    a = r.bid(B, 2_000)
    assert (a.leader, a.price) == (A, 2_000)
    a = r.bid(A, 9_000)
    assert (a.leader, a.price, a.leader_max) == (A, 2_100, 9_000)


def test_bid_must_clear_the_increment() -> None:
    r = Run(make())
    with pytest.raises(BidTooLow) as err:
        engine.place_bid(r.a, Bid(A, 999), T0 + 1)
    assert err.value.min_bid == 1_000
    r.bid(A, 1_000, BidKind.EXACT)
    with pytest.raises(BidTooLow) as err:
        engine.place_bid(r.a, Bid(B, 1_099), T0 + 1)
    assert err.value.min_bid == 1_100
    assert r.bid(B, 1_100, BidKind.EXACT).price == 1_100


def test_one_tap_next_increment_and_stale_tap() -> None:
    r = Run(make())
    a = r.bid(A, 1_000, BidKind.NEXT)
    assert (a.price, a.leader) == (1_000, A)
    a = r.bid(B, 5_000, BidKind.NEXT)  # agreed to pay up to 5,000: pays the next step only
    assert (a.price, a.leader) == (1_100, B)
    assert r.records[-1].kind is BidKind.EXACT
    assert r.records[-1].amount == 1_100
    with pytest.raises(BidTooLow):  # the price moved past what C tapped
        engine.place_bid(a, Bid(C, 1_100, BidKind.NEXT), T0 + 2)


def test_exact_bid_sets_price_to_its_amount() -> None:
    r = Run(make())
    r.bid(A, 1_000, BidKind.EXACT)
    a = r.bid(B, 4_000, BidKind.EXACT)
    assert (a.price, a.leader) == (4_000, B)


def test_per_auction_increment_table() -> None:
    r = Run(make(start_price=500, increments=IncrementTable(((0, 5), (1_000, 250)))))
    r.bid(A, 500, BidKind.EXACT)
    with pytest.raises(BidTooLow) as err:
        engine.place_bid(r.a, Bid(B, 504), T0 + 1)
    assert err.value.min_bid == 505
    r.bid(B, 1_000, BidKind.EXACT)
    assert r.a.min_next == 1_250


def test_increment_table_validation() -> None:
    with pytest.raises(ValueError):
        IncrementTable(((100, 5),))
    with pytest.raises(ValueError):
        IncrementTable(((0, 5), (0, 10)))
    with pytest.raises(ValueError):
        IncrementTable(((0, 0),))
    assert IncrementTable().increment(0) == 100
    assert IncrementTable().increment(2_999) == 100
    assert IncrementTable().increment(3_000) == 200
    assert IncrementTable().increment(10**9) == 5_000


def test_soft_close_resets_the_clock() -> None:
    a = make()  # ends at T0 + 30,000, window 10 s
    placed = engine.place_bid(a, Bid(A, 2_000), T0 + 5_000)
    assert placed.state.ends_at == T0 + 30_000  # 25 s left: no extension
    assert not any(isinstance(e, Extended) for e in placed.events)
    placed = engine.place_bid(placed.state, Bid(B, 3_000), T0 + 25_000)
    assert placed.state.ends_at == T0 + 35_000  # 5 s left → reset to 10 s
    assert isinstance(placed.events[0], BidAccepted)
    assert placed.events[0].extended
    assert placed.events[1] == Extended(2, T0 + 35_000)


def test_sudden_death_never_extends() -> None:
    a = make(soft_close_ms=0)
    placed = engine.place_bid(a, Bid(A, 2_000), T0 + 29_999)
    assert placed.state.ends_at == T0 + 30_000
    with pytest.raises(AuctionNotOpen):
        engine.place_bid(placed.state, Bid(B, 5_000), T0 + 30_000)


def test_leader_raise_does_not_extend() -> None:
    r = Run(make())
    r.bid(A, 2_000, at=T0 + 1)
    a = r.bid(A, 9_000, at=T0 + 29_000)
    assert a.ends_at == T0 + 30_000


def test_no_bid_at_or_after_the_end_nor_before_the_start() -> None:
    a = make()
    for at in (T0 + 30_000, T0 + 30_001):
        with pytest.raises(AuctionNotOpen):
            engine.place_bid(a, Bid(A, 2_000), at)
    with pytest.raises(AuctionNotOpen):
        engine.place_bid(a, Bid(A, 2_000), T0 - 1)
    assert engine.place_bid(a, Bid(A, 2_000), T0).state.state is State.OPEN


def test_scheduled_start() -> None:
    a = make(starts_at=T0 + 60_000)
    assert a.state is State.SCHEDULED
    assert a.ends_at == T0 + 90_000
    assert engine.open_if_due(a, T0).state is State.SCHEDULED
    assert engine.open_if_due(a, T0 + 60_000).state is State.OPEN
    with pytest.raises(AuctionNotOpen):
        engine.place_bid(a, Bid(A, 2_000), T0 + 59_999)


def test_seller_cannot_bid() -> None:
    with pytest.raises(SellerCannotBid):
        engine.place_bid(make(), Bid(SELLER, 5_000), T0 + 1)


def test_hidden_reserve_jump_and_no_sale_below_reserve() -> None:
    r = Run(make(reserve_price=4_000))
    a = r.bid(A, 3_000)
    assert (a.price, a.reserve_met) == (1_000, False)
    accepted = r.events[-1]
    assert isinstance(accepted, BidAccepted)
    assert accepted.reserve_met is False
    closed, events = engine.close(a, a.ends_at)
    assert (closed.state, closed.outcome) == (State.CLOSED, Outcome.NO_SALE)
    assert events == [Closed(1, Outcome.NO_SALE, None, None, reserve_met=False)]
    # A maximum at or above the reserve pulls the price up to it.
    a = r.bid(B, 6_000)
    assert (a.price, a.leader, a.reserve_met) == (4_000, B, True)
    closed, events = engine.close(a, a.ends_at + 5)
    assert closed.outcome is Outcome.SOLD
    assert events == [Closed(2, Outcome.SOLD, B, 4_000, reserve_met=True)]


def test_leader_raise_reaching_reserve_jumps_price() -> None:
    r = Run(make(reserve_price=4_000))
    r.bid(A, 2_000)
    a = r.bid(A, 4_500)
    assert (a.price, a.reserve_met) == (4_000, True)


def test_public_events_never_reveal_maxima_or_reserve() -> None:
    # (Once a maximum reaches the reserve the price jumps to it, as on eBay; not here.)
    r = Run(make(reserve_price=9_999))
    r.bid(A, 6_543)
    r.bid(B, 2_000)
    r.bid(C, 8_888)
    for event in r.events:
        values = set(vars(event).values()) if hasattr(event, "__dict__") else {
            getattr(event, f) for f in event.__slots__  # type: ignore[attr-defined]
        }
        assert not values & {6_543, 9_999, 8_888}


def test_buy_now_until_first_bid() -> None:
    a = make(buy_now_price=20_000)
    placed = engine.place_bid(a, Bid(A, 0, BidKind.BUY_NOW), T0 + 1)
    assert (placed.state.state, placed.state.outcome, placed.state.price) == (
        State.CLOSED, Outcome.SOLD, 20_000)
    assert isinstance(placed.events[-1], Closed)
    assert placed.events[-1].winner == A
    after_bid = engine.place_bid(a, Bid(B, 1_000), T0 + 1).state
    assert after_bid.buy_now_available is False
    with pytest.raises(BuyNowUnavailable):
        engine.place_bid(after_bid, Bid(A, 0, BidKind.BUY_NOW), T0 + 2)
    with pytest.raises(BuyNowUnavailable):
        engine.place_bid(make(), Bid(A, 0, BidKind.BUY_NOW), T0 + 2)


def test_close_rules() -> None:
    a = make()
    with pytest.raises(InvalidAuctionAction):
        engine.close(a, a.ends_at - 1)
    closed, events = engine.close(a, a.ends_at)
    assert closed.outcome is Outcome.NO_SALE
    assert events[0].winner is None
    with pytest.raises(InvalidAuctionAction):  # exactly once
        engine.close(closed, a.ends_at + 1)
    with pytest.raises(AuctionNotOpen):
        engine.place_bid(closed, Bid(A, 5_000), a.ends_at - 1)
    r = Run(make())
    r.bid(A, 5_000)
    r.bid(B, 2_000)
    closed, events = engine.close(r.a, r.a.ends_at)
    assert events == [Closed(2, Outcome.SOLD, A, 2_100, reserve_met=True)]


def test_admin_cancel() -> None:
    r = Run(make())
    r.bid(A, 5_000)
    cancelled, events = engine.cancel(r.a, "wrong item", T0 + 2)
    assert cancelled.state is State.CANCELLED
    assert events == [Cancelled(1, "wrong item")]
    with pytest.raises(AuctionNotOpen):
        engine.place_bid(cancelled, Bid(B, 9_000), T0 + 3)
    with pytest.raises(InvalidAuctionAction):
        engine.cancel(cancelled, "again", T0 + 3)
    with pytest.raises(InvalidAuctionAction):
        engine.close(cancelled, cancelled.ends_at)


def test_void_recomputes_price_by_replay() -> None:
    r = Run(make())
    r.bid(A, 2_000)  # seq 1
    r.bid(B, 9_000)  # seq 2: B leads at 2,100
    r.bid(C, 3_000)  # seq 3: B defends at 3,200
    voided, events, out = engine.void_bid(r.a, r.records, voided=frozenset(), seq=2,
                                          reason="shill")
    # Without B: A (2,000) then C (3,000) → C leads at 2,100; seq is not reused.
    assert (voided.leader, voided.price, voided.seq, voided.bid_count) == (C, 2_100, 3, 2)
    assert out == {2}
    assert events == [BidVoided(3, 2, "shill", 2_100, C, 2, True)]
    with pytest.raises(InvalidAuctionAction):
        engine.void_bid(voided, r.records, voided=out, seq=2, reason="again")
    with pytest.raises(InvalidAuctionAction):
        engine.void_bid(voided, r.records, voided=out, seq=42, reason="unknown")
    # The next bid continues from the recomputed state.
    placed = engine.place_bid(voided, Bid(A, 3_300, BidKind.EXACT), T0 + 3)
    assert (placed.state.seq, placed.state.leader, placed.state.price) == (4, A, 3_300)


def test_void_everything_returns_to_start_and_keeps_end() -> None:
    r = Run(make())
    r.bid(A, 2_000, at=T0 + 25_000)  # extends to T0 + 35,000
    voided, _, _ = engine.void_bid(r.a, r.records, voided=frozenset(), seq=1, reason="x")
    assert (voided.leader, voided.price, voided.bid_count) == (None, 1_000, 0)
    assert voided.ends_at == T0 + 35_000
    closed, _events = engine.close(voided, voided.ends_at)
    assert closed.outcome is Outcome.NO_SALE


def test_void_only_while_live() -> None:
    r = Run(make())
    r.bid(A, 2_000)
    closed, _ = engine.close(r.a, r.a.ends_at)
    with pytest.raises(InvalidAuctionAction):
        engine.void_bid(closed, r.records, voided=frozenset(), seq=1, reason="late")


def test_replay_reproduces_state() -> None:
    r = Run(make(reserve_price=3_000))
    r.bid(A, 2_000, at=T0 + 1)
    r.bid(B, 1_500, BidKind.NEXT, at=T0 + 2)  # stale tap refused? no: min_next is 1,100
    r.bid(C, 8_000, at=T0 + 25_000)
    r.bid(A, 7_000, BidKind.EXACT, at=T0 + 26_000)
    assert engine.replay(r.a.rules, r.records) == r.a
    bad = [*r.records[:1], replace(r.records[1], amount=1)]
    with pytest.raises(BidTooLow):
        engine.replay(r.a.rules, bad)


def test_funds_a_bid_needs() -> None:
    rules = make(buy_now_price=9_000).rules
    assert engine.funds_needed(rules, BidKind.MAX, 4_000) == 4_000
    assert engine.funds_needed(rules, BidKind.NEXT, 4_000) == 4_000
    assert engine.funds_needed(rules, BidKind.BUY_NOW, 0) == 9_000
    assert engine.funds_needed(rules, BidKind.BUY_NOW, 0, deposit=500) == 500
    assert engine.funds_needed(rules, BidKind.MAX, 4_000, deposit=500) == 500


def test_ended_unsold_only_on_the_change_that_ends_without_a_sale() -> None:
    live = engine.open_if_due(make(reserve_price=5_000), T0)
    unsold, _ = engine.close(live, live.ends_at)  # no bid: no sale
    assert engine.ended_unsold(live, unsold)
    assert not engine.ended_unsold(unsold, unsold)  # closed already: not again
    cancelled, _ = engine.cancel(live, "wrong item", T0 + 1)
    assert engine.ended_unsold(live, cancelled)
    r = Run(live)
    r.bid(A, 6_000)
    sold, _ = engine.close(r.a, r.a.ends_at)
    assert sold.outcome is Outcome.SOLD and not engine.ended_unsold(r.a, sold)
    below = Run(live)
    below.bid(A, 2_000)  # under the reserve
    no_sale, _ = engine.close(below.a, below.a.ends_at)
    assert engine.ended_unsold(below.a, no_sale)
