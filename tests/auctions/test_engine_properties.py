"""Invariants of the engine over random bid sequences (Hypothesis)."""

from __future__ import annotations

import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from auctions import engine
from auctions.errors import BidRejected, InvalidAuctionAction
from auctions.model import (
    Auction,
    Bid,
    BidKind,
    BidRecord,
    IncrementTable,
    Outcome,
    Rules,
    State,
    new_auction,
)

SELLER = uuid.UUID(int=1)
BIDDERS = [uuid.UUID(int=i) for i in range(10, 15)]
T0 = 1_700_000_000_000

# Random increment tables: step 0 plus up to four more (price → increment), strictly increasing.
tables = st.dictionaries(st.integers(1, 5_000).map(lambda s: s * 10), st.integers(1, 2_000),
                         max_size=4).flatmap(
    lambda extra: st.integers(1, 500).map(
        lambda first: IncrementTable(((0, first), *sorted(extra.items())))))


rules_st = st.builds(
    lambda start, dur, soft, reserve, bin_, table: Rules(
        auction_id=uuid.UUID(int=7), seller_id=SELLER, currency="USD", start_price=start,
        starts_at=T0, duration_ms=dur, soft_close_ms=soft, reserve_price=reserve,
        buy_now_price=bin_, increments=table,
    ),
    st.integers(1, 5_000),
    st.integers(1_000, 30_000),
    st.sampled_from([0, 0, 2_000, 10_000]),
    st.none() | st.integers(1, 60_000),
    st.none() | st.integers(1, 60_000),
    tables,
)

# (bidder, amount, kind, ms since the previous attempt). A negative amount means "relative to
# the lowest acceptable bid at that moment" (-1 → exactly it, -50 → 49 above), so most attempts
# land near the price and the proxy rules get exercised; positive amounts are absolute.
bid_st = st.tuples(
    st.sampled_from([*BIDDERS, BIDDERS[0], BIDDERS[1], SELLER]),
    st.integers(-3_000, 80_000) | st.integers(-3_000, 5) | st.integers(-3_000, 5),
    st.sampled_from([BidKind.MAX] * 4 + [BidKind.EXACT, BidKind.NEXT, BidKind.BUY_NOW]),
    st.integers(0, 1_500),
)


def run(rules: Rules, attempts: list[tuple[uuid.UUID, int, BidKind, int]]) -> tuple[
        Auction, list[BidRecord], list[tuple[Auction, Auction, BidRecord]], int]:
    a = new_auction(rules)
    now = T0 - 500
    records: list[BidRecord] = []
    steps_taken: list[tuple[Auction, Auction, BidRecord]] = []
    for who, amount, kind, dt in attempts:
        now += dt
        before = a
        if amount <= 0:
            amount = a.min_next - amount - 1 - (5 if amount > -5 else 0)
        try:
            placed = engine.place_bid(a, Bid(who, amount, kind), now)
        except BidRejected:
            continue
        a = placed.state
        records.append(placed.record)
        steps_taken.append((before, a, placed.record))
    return a, records, steps_taken, now


@settings(max_examples=150)
@given(rules_st, st.lists(bid_st, min_size=5, max_size=60))
def test_invariants_over_random_bids(
    rules: Rules, attempts: list[tuple[uuid.UUID, int, BidKind, int]]
) -> None:
    final, records, steps_taken, now = run(rules, attempts)
    for before, after, rec in steps_taken:
        # Every accepted bid clears the increment (the start price for the first bid).
        if rec.kind is not BidKind.BUY_NOW:
            assert rec.amount >= before.min_next
        # The price never decreases, and never exceeds the leader's maximum.
        assert after.price >= before.price or before.leader is None
        assert after.leader is not None
        assert after.price <= after.leader_max
        # No bid accepted before the start or at/after the end (end as it was when it arrived).
        assert rules.starts_at <= rec.at < before.ends_at
        # The end only moves later, and never in sudden death.
        assert after.ends_at >= before.ends_at
        if rules.sudden_death:
            assert after.ends_at == before.ends_at
        assert after.seq == before.seq + 1
        assert rec.bidder != rules.seller_id
        # Buy it now disappears with the first accepted bid.
        assert after.buy_now_available is False
    assert [r.seq for r in records] == list(range(1, len(records) + 1))
    # Replaying the accepted bids reproduces the final state.
    rebuilt = engine.replay(rules, records)
    if final.state is State.OPEN and rebuilt.state is State.SCHEDULED:  # pragma: no cover
        rebuilt = engine.open_if_due(rebuilt, rules.starts_at)
    assert rebuilt == final
    # Closing: at most once; sold only with a leader at or above the reserve.
    if final.state in engine.LIVE_STATES:
        closed, _ = engine.close(final, max(now, final.ends_at))
        if closed.outcome is Outcome.SOLD:
            assert closed.leader is not None
            assert rules.reserve_price is None or closed.price >= rules.reserve_price
        else:
            assert closed.leader is None or (
                rules.reserve_price is not None and closed.leader_max < rules.reserve_price)
        try:
            engine.close(closed, closed.ends_at + 1)
        except InvalidAuctionAction:
            pass
        else:  # pragma: no cover
            raise AssertionError("closed twice")


@settings(max_examples=100)
@given(rules_st, st.lists(bid_st, min_size=5, max_size=40), st.data())
def test_void_equals_replay_without_the_voided_bid(
    rules: Rules, attempts: list[tuple[uuid.UUID, int, BidKind, int]], data: st.DataObject
) -> None:
    final, records, _, _ = run(rules, attempts)
    voidable = [r for r in records if r.kind is not BidKind.BUY_NOW]
    if final.state not in engine.LIVE_STATES or not voidable:
        return
    target = data.draw(st.sampled_from(voidable))
    after, _, out = engine.void_bid(final, records, voided=frozenset(), seq=target.seq,
                                    reason="test")
    assert target.seq in out
    assert after.seq == final.seq
    assert after.ends_at == final.ends_at
    kept = [r for r in records if r.seq not in out]
    assert after.bid_count == len(kept)
    if kept:
        assert after.leader is not None
        assert after.price <= after.leader_max
        assert after.price >= rules.start_price
    else:
        assert after.leader is None
        assert after.price == rules.start_price
    # Voiding is the same as never having had the left-out bids (prices and leader).
    redo = new_auction(rules)
    for r in kept:
        redo = engine._price(redo, r.bidder, r.kind, r.amount)
    assert (redo.price, redo.leader, redo.leader_max) == (after.price, after.leader,
                                                          after.leader_max)


@settings(max_examples=150)
@given(rules_st, st.lists(st.tuples(st.sampled_from(BIDDERS), st.integers(-3_000, 60_000)),
                          min_size=1, max_size=40))
def test_price_matches_the_ebay_formula_for_proxy_bids(
    rules: Rules, bids: list[tuple[uuid.UUID, int]]
) -> None:
    """Oracle for maximum (proxy) bids: with every bidder's current maximum, the leader is the
    highest maximum (the earliest on ties) and the price is one increment above the
    second-highest maximum, capped at the leader's, the start price with a single bidder, and
    lifted to the reserve when the leader's maximum reaches it."""
    a = new_auction(rules)
    maxima: dict[uuid.UUID, tuple[int, int]] = {}  # bidder → (max, order it was reached)
    for order, (who, amount) in enumerate(bids):
        if amount <= 0:
            amount = a.min_next - amount - 1
        try:
            a = engine.place_bid(a, Bid(who, amount, BidKind.MAX), T0 + order).state
        except BidRejected:
            continue
        maxima[who] = (amount, order)
        ranked = sorted(maxima.items(), key=lambda kv: (-kv[1][0], kv[1][1]))
        leader, (lmax, _) = ranked[0]
        if len(ranked) == 1:
            price = rules.start_price
        else:
            second = ranked[1][1][0]
            price = min(lmax, second + rules.increments.increment(second))
        if rules.reserve_price is not None and price < rules.reserve_price <= lmax:
            price = rules.reserve_price
        assert (a.leader, a.leader_max, a.price) == (leader, lmax, price)
