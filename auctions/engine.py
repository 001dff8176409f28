"""The auction rules as pure functions: state in, new state and public events out.

The server clock is the only clock: every function takes `now` (ms since the epoch, stamped by
the sequencer) and never reads time itself. Nothing here does I/O; the caller persists what it
returns and broadcasts the events, in `seq` order.

Bid resolution (eBay proxy rules, Whatnot live-auction timing):
- The lowest acceptable bid is the start price while nobody leads, then `price + increment(price)`
  with the increment taken from the auction's table at the current price.
- A MAX bid above the leader's maximum takes the lead at one increment above the old leader's
  maximum, capped at its own maximum. A bid that does not beat the leader's maximum (ties
  included: the earlier maximum wins) is accepted and immediately answered by the leader's proxy:
  the price becomes one increment above it, capped at the leader's maximum.
- An EXACT bid that takes the lead sets the price to its amount; a NEXT bid is an EXACT bid at
  the lowest acceptable amount, refused if that moved above what the bidder agreed to.
- The leader bidding again only raises their maximum (any kind): they never bid against
  themselves. The price moves only if it was capped by their old maximum (it becomes one
  increment above the second-highest maximum, capped at the new one) or to meet a hidden
  reserve the new maximum reaches.
- Reserve: when the leader's maximum reaches the hidden reserve and the price is below it, the
  price jumps to the reserve. Below the reserve at the end: no sale.
- Soft close: a bid that changes the price or the leader with fewer than `soft_close_ms` left
  resets the end to `now + soft_close_ms`. Sudden death (`soft_close_ms = 0`) never extends.
- Buy it now is offered until the first accepted bid; taking it ends the auction sold.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import NamedTuple

from auctions.errors import (
    AuctionNotOpen,
    BidTooLow,
    BuyNowUnavailable,
    InvalidAuctionAction,
    SellerCannotBid,
)
from auctions.model import (
    MAX_PRICE,
    Auction,
    Bid,
    BidAccepted,
    BidKind,
    BidRecord,
    BidVoided,
    Cancelled,
    Closed,
    Event,
    Extended,
    Outcome,
    PaymentState,
    Rules,
    State,
    new_auction,
)

LIVE_STATES = frozenset({State.SCHEDULED, State.OPEN})


class Placed(NamedTuple):
    """What `place_bid` returns: the new state, the public events to broadcast in order, and
    the record to store (replaying the records reproduces the state)."""

    state: Auction
    events: list[Event]
    record: BidRecord


def is_open(auction: Auction, now: int) -> bool:
    """Whether a bid arriving at `now` may be considered."""
    return (
        auction.state in LIVE_STATES
        and auction.rules.starts_at <= now < auction.ends_at
    )


def funds_needed(rules: Rules, kind: BidKind, amount: int, deposit: int = 0) -> int:
    """The wallet balance a bid needs: the deposit when one is configured, else the buy-it-now
    price for a buy-it-now bid, else the bid's amount."""
    if deposit > 0:
        return deposit
    if kind is BidKind.BUY_NOW:
        return rules.buy_now_price or 0
    return amount


def open_if_due(auction: Auction, now: int) -> Auction:
    """SCHEDULED → OPEN once `starts_at` has passed; otherwise unchanged."""
    if auction.state is State.SCHEDULED and now >= auction.rules.starts_at:
        return replace(auction, state=State.OPEN)
    return auction


def place_bid(auction: Auction, bid: Bid, now: int) -> Placed:
    """Apply `bid` received at server time `now`.

    Raises AuctionNotOpen (not started, ended, closed or cancelled — including exactly at the
    end), SellerCannotBid, BidTooLow (with `min_bid`), BuyNowUnavailable. Nothing changes when
    it raises."""
    if not is_open(auction, now):
        raise AuctionNotOpen()
    if bid.bidder == auction.rules.seller_id:
        raise SellerCannotBid()
    auction = open_if_due(auction, now)
    if bid.kind is BidKind.BUY_NOW:
        return _buy_now(auction, bid, now)
    kind, amount = _resolve(auction, bid)
    priced = _price(auction, bid.bidder, kind, amount)
    changed = priced.price != auction.price or priced.leader != auction.leader
    ends_at = auction.ends_at
    soft = auction.rules.soft_close_ms
    extended = changed and soft > 0 and ends_at - now < soft
    if extended:
        ends_at = now + soft
    new = replace(
        priced,
        seq=auction.seq + 1,
        bid_count=auction.bid_count + 1,
        ends_at=ends_at,
        buy_now_available=False,
    )
    assert new.leader is not None
    events: list[Event] = [_accepted(new, extended)]
    if extended:
        events.append(Extended(new.seq, ends_at))
    record = BidRecord(
        seq=new.seq, bidder=bid.bidder, bid_id=bid.bid_id, kind=kind, amount=amount, at=now,
        price_after=new.price, leader_after=new.leader, ends_at_after=ends_at,
    )
    return Placed(new, events, record)


def _resolve(auction: Auction, bid: Bid) -> tuple[BidKind, int]:
    """A NEXT bid becomes an EXACT bid at the lowest acceptable amount."""
    if bid.kind is BidKind.NEXT:
        minimum = auction.min_next
        if bid.amount < minimum:
            raise BidTooLow(minimum)
        return BidKind.EXACT, minimum
    if not 0 < bid.amount <= MAX_PRICE:
        raise BidTooLow(auction.min_next)
    return bid.kind, bid.amount


def _price(auction: Auction, bidder: uuid.UUID, kind: BidKind, amount: int) -> Auction:
    """The proxy pricing step alone (no time, no seq). Raises BidTooLow."""
    rules = auction.rules
    minimum = auction.min_next
    inc = rules.increments.increment
    if bidder == auction.leader:
        # Raising your own maximum never bids against yourself: only the second-highest
        # maximum sets the price (it may have been capped by your old maximum).
        if amount < minimum or amount <= auction.leader_max:
            raise BidTooLow(max(minimum, auction.leader_max + 1))
        price = auction.price
        second = auction.second_max
        if second:
            price = max(price, min(amount, second + inc(second)))
        price = _reserve_jump(rules, price, amount)
        return replace(auction, leader_max=amount, price=price)
    if amount < minimum:
        raise BidTooLow(minimum)
    if auction.leader is None:
        leader, leader_max, second = bidder, amount, 0
        price = amount if kind is BidKind.EXACT else rules.start_price
    elif amount > auction.leader_max:
        leader, leader_max = bidder, amount
        second = old = auction.leader_max
        price = amount if kind is BidKind.EXACT else min(amount, old + inc(old))
    else:  # the leader's proxy answers; equal maximums go to the earlier bid
        leader, leader_max = auction.leader, auction.leader_max
        second = max(auction.second_max, amount)
        price = min(leader_max, amount + inc(amount))
    price = _reserve_jump(rules, max(price, auction.price), leader_max)
    return replace(auction, leader=leader, leader_max=leader_max, second_max=second, price=price)


def _reserve_jump(rules: Rules, price: int, leader_max: int) -> int:
    reserve = rules.reserve_price
    if reserve is not None and price < reserve <= leader_max:
        return reserve
    return price


def _buy_now(auction: Auction, bid: Bid, now: int) -> Placed:
    price = auction.rules.buy_now_price
    if price is None or not auction.buy_now_available:
        raise BuyNowUnavailable()
    new = replace(
        auction,
        seq=auction.seq + 1,
        bid_count=auction.bid_count + 1,
        price=price,
        leader=bid.bidder,
        leader_max=price,
        buy_now_available=False,
        state=State.CLOSED,
        outcome=Outcome.SOLD,
        closed_at=now,
    )
    record = BidRecord(
        seq=new.seq, bidder=bid.bidder, bid_id=bid.bid_id, kind=BidKind.BUY_NOW, amount=price,
        at=now, price_after=price, leader_after=bid.bidder, ends_at_after=new.ends_at,
    )
    closed = Closed(new.seq, Outcome.SOLD, bid.bidder, price, reserve_met=True)
    return Placed(new, [_accepted(new, False), closed], record)


def _accepted(new: Auction, extended: bool) -> BidAccepted:
    assert new.leader is not None
    return BidAccepted(
        seq=new.seq, price=new.price, leader=new.leader, ends_at=new.ends_at, extended=extended,
        reserve_met=new.reserve_met, buy_now_available=new.buy_now_available,
        bid_count=new.bid_count,
    )


def close(auction: Auction, now: int) -> tuple[Auction, list[Event]]:
    """End a live auction whose time is up: SOLD to the leader at the price if the reserve is
    met, otherwise NO_SALE. Raises InvalidAuctionAction if it is not live or not yet due."""
    if auction.state not in LIVE_STATES:
        raise InvalidAuctionAction("The auction is already closed or cancelled.")
    if now < auction.ends_at:
        raise InvalidAuctionAction("The auction has not reached its end.")
    sold = auction.reserve_met
    outcome = Outcome.SOLD if sold else Outcome.NO_SALE
    new = replace(auction, state=State.CLOSED, outcome=outcome, closed_at=now)
    event = Closed(
        new.seq, outcome, auction.leader if sold else None, auction.price if sold else None,
        reserve_met=sold,
    )
    return new, [event]


def ended_unsold(before: Auction, after: Auction) -> bool:
    """Whether this change ended a live auction without a sale (cancelled, or closed with no
    sale): the unit it held goes back to stock then, and only then."""
    return before.state in LIVE_STATES and (
        after.state is State.CANCELLED
        or (after.state is State.CLOSED and after.outcome is Outcome.NO_SALE))


def payment_refused(
    closed_at: int, due_at: int | None, now: int, window_ms: int,
) -> tuple[PaymentState, int]:
    """The payment-window rule (Whatnot), when the winner's wallet could not pay: the payment
    is due `window_ms` after the close (or at `due_at`, once set); before then it stays
    AWAITING (retried), from then on it is FAILED (the order is cancelled). Returns the new
    state and the due time to record."""
    due = due_at if due_at is not None else closed_at + window_ms
    return (PaymentState.FAILED if now >= due else PaymentState.AWAITING), due


def cancel(auction: Auction, reason: str, now: int) -> tuple[Auction, list[Event]]:
    """Admin cancel of a live auction (no sale). Raises InvalidAuctionAction once it is over."""
    if auction.state not in LIVE_STATES:
        raise InvalidAuctionAction("Only a scheduled or open auction can be cancelled.")
    new = replace(auction, state=State.CANCELLED, closed_at=now, cancel_reason=reason)
    return new, [Cancelled(new.seq, reason)]


def replay(rules: Rules, records: Iterable[BidRecord]) -> Auction:
    """Rebuild an auction from its accepted bids, each at its recorded time. Raises if a record
    is not acceptable (a corrupted history), so a passing replay proves the record is faithful."""
    auction = new_auction(rules)
    for rec in records:
        bid = Bid(rec.bidder, rec.amount, rec.kind, rec.bid_id)
        auction = place_bid(auction, bid, rec.at).state
    return auction


def void_bid(
    auction: Auction,
    records: Sequence[BidRecord],
    *,
    voided: frozenset[int],
    seq: int,
    reason: str,
) -> tuple[Auction, list[Event], frozenset[int]]:
    """Admin void of accepted bid `seq` while the auction is live: the price and leader are
    recomputed by replaying the remaining accepted bids in order (`records` is the whole
    history, `voided` the seqs already voided). A remaining bid that no longer clears the rules
    (e.g. a leader's raise that became a lower bid) is left out too; the returned set is every
    seq now out of the price (`seq` included). The end time never moves earlier and `seq` is not
    reused. Raises InvalidAuctionAction (not live, unknown or already voided seq, buy-it-now)."""
    if auction.state not in LIVE_STATES:
        raise InvalidAuctionAction("Bids can only be voided while the auction is live.")
    target = next((r for r in records if r.seq == seq), None)
    if target is None or seq in voided or target.kind is BidKind.BUY_NOW:
        raise InvalidAuctionAction("No such accepted bid to void.")
    out = set(voided) | {seq}
    rebuilt = replace(
        new_auction(auction.rules), state=auction.state, ends_at=auction.ends_at, seq=auction.seq
    )
    for rec in records:
        if rec.seq in out:
            continue
        try:
            priced = _price(rebuilt, rec.bidder, rec.kind, rec.amount)
        except BidTooLow:
            out.add(rec.seq)
            continue
        rebuilt = replace(priced, bid_count=rebuilt.bid_count + 1)
    # Buy it now disappeared with the first bid and does not come back.
    rebuilt = replace(rebuilt, buy_now_available=auction.buy_now_available)
    if rebuilt.leader is None:
        rebuilt = replace(rebuilt, price=auction.rules.start_price)
    event = BidVoided(
        seq=rebuilt.seq, voided_seq=seq, reason=reason, price=rebuilt.price,
        leader=rebuilt.leader, bid_count=rebuilt.bid_count, reserve_met=rebuilt.reserve_met,
    )
    return rebuilt, [event], frozenset(out)
