"""The rules of one sequenced batch of bids, pure (no I/O, time as an argument).

The writer (auctions/writer.py) locks the auction, reads its state and the bids already
accepted under the batch's (bidder, bid_id) keys, then calls `decide`, which says for every bid
in arrival order what happens to it:

- refused before sequencing (rate limit, full queue): an audit row, and its refusal as answer;
- a retry of a bid already accepted (`replayed`): the first answer again, or
  IdempotencyKeyReused when the key now names a different bid;
- short of funds (the batch's wallet check): InsufficientFunds;
- otherwise `engine.place_bid` from the state the previous bid left.

`WalletCache` is the trust rule of the funds check: a balance read less than `ttl_s` ago that
covers the bid is believed without reading the ledger again; one that does not cover it never
is (a top-up counts at once).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from auctions import engine
from auctions.errors import BidRejected, InsufficientFunds
from auctions.model import Auction, Bid, BidKind, BidRecord, Event
from core.errors import AppError, IdempotencyKeyReused

ACCEPTED = "accepted"
DUPLICATE = "duplicate"


@dataclass(frozen=True, slots=True)
class BidAck:
    """The answer to an accepted bid (also returned, unchanged, to a retry)."""

    seq: int
    amount: int  # the bid as recorded (a one-tap bid resolved to its amount)
    price: int  # the auction price right after it
    ends_at: int
    leading: bool
    replayed: bool = False

    def frame(self) -> dict[str, object]:
        return {
            "accepted": True, "seq": self.seq, "amount": self.amount, "price": self.price,
            "ends_at": self.ends_at, "leading": self.leading, "replayed": self.replayed,
        }


@dataclass(frozen=True, slots=True)
class Attempt:
    """One row of the attempts audit (`auction_bid_attempts`)."""

    bidder: uuid.UUID
    bid_id: uuid.UUID | None
    kind: str
    amount: int | None
    outcome: str  # "accepted", "duplicate" or the refusal's code
    seq: int | None
    at: int


class Pending(Protocol):
    """What `decide` reads of a queued bid (auctions.checks.BidRequest)."""

    @property
    def bidder(self) -> uuid.UUID: ...
    @property
    def amount(self) -> int: ...
    @property
    def kind(self) -> BidKind: ...
    @property
    def bid_id(self) -> uuid.UUID: ...
    @property
    def refused(self) -> str | None: ...
    @property
    def refusal(self) -> AppError | None: ...


P = TypeVar("P", bound=Pending)

Answer = BidAck | BaseException


@dataclass(slots=True)
class Decided(Generic[P]):
    """What a batch comes to: the state to write (`changed`), the accepted bids, the audit
    rows, the events to announce and each bid's answer."""

    state: Auction
    records: list[BidRecord]
    attempts: list[Attempt]
    events: list[Event]
    answers: list[tuple[P, Answer]]
    changed: bool  # bids accepted, or the state moved (e.g. buy it now closed it)
    closed: bool  # the batch ended the auction

    def outcomes(self) -> Counter[str]:
        """Attempts by outcome (for the metrics)."""
        return Counter(t.outcome for t in self.attempts)


def ack(rec: BidRecord, *, replayed: bool = False) -> BidAck:
    """The answer to the accepted bid `rec`."""
    return BidAck(
        seq=rec.seq, amount=rec.amount, price=rec.price_after, ends_at=rec.ends_at_after,
        leading=rec.leader_after == rec.bidder, replayed=replayed,
    )


def replayed(previous: BidRecord, kind: BidKind, amount: int) -> BidAck | AppError:
    """A retry of the accepted bid `previous` under the same (bidder, bid_id): its first
    answer again if it is the same bid — same kind (a one-tap NEXT bid was recorded as EXACT)
    and same amount (NEXT and BUY_NOW amounts are resolved by the engine, so any is the same);
    else IdempotencyKeyReused."""
    same_kind = previous.kind is kind or (kind is BidKind.NEXT and previous.kind is BidKind.EXACT)
    same_amount = previous.amount == amount or kind in (BidKind.NEXT, BidKind.BUY_NOW)
    if not (same_kind and same_amount):
        return IdempotencyKeyReused("This bid_id was used for a different bid.")
    return ack(previous, replayed=True)


def answer_code(exc: BaseException) -> str:
    """The audit outcome of a refusal."""
    return exc.code if isinstance(exc, AppError) else "internal_error"


def decide(
    state: Auction,
    batch: Sequence[P],
    known: dict[tuple[uuid.UUID, uuid.UUID], BidRecord],
    short: set[int],
    now: int,
) -> Decided[P]:
    """Run the batch, in arrival order, from the locked `state` at the sequencer's `now`.
    `known`: bids already accepted by (bidder, bid_id) — bids accepted here are added, so a
    retry inside the batch is a retry too; `short`: the bids (by `id()`) the funds check
    found short. Refusals lose their tracebacks (they are answered through futures, where one
    would tie the whole batch into a reference cycle)."""
    before = state.state
    records: list[BidRecord] = []
    attempts: list[Attempt] = []
    events: list[Event] = []
    answers: list[tuple[P, Answer]] = []
    for r in batch:
        key = (r.bidder, r.bid_id)
        seq: int | None = None
        answer: Answer | None
        if r.refused is not None:
            outcome, answer = r.refused, r.refusal
        elif (previous := known.get(key)) is not None:
            answer = replayed(previous, r.kind, r.amount)
            outcome, seq = (DUPLICATE if isinstance(answer, BidAck) else answer.code), previous.seq
        elif id(r) in short:
            answer = InsufficientFunds()
            outcome = answer.code
        else:
            try:
                placed = engine.place_bid(state, Bid(r.bidder, r.amount, r.kind, r.bid_id), now)
            except BidRejected as exc:
                exc.__traceback__ = None
                outcome, answer = exc.code, exc
            else:
                state, rec = placed.state, placed.record
                records.append(rec)
                known[key] = rec
                events.extend(placed.events)
                outcome, seq, answer = ACCEPTED, rec.seq, ack(rec)
        attempts.append(Attempt(r.bidder, r.bid_id, r.kind.value, r.amount, outcome, seq, now))
        if answer is not None:
            answers.append((r, answer))
    moved = state.state is not before
    return Decided(
        state=state, records=records, attempts=attempts, events=events, answers=answers,
        changed=bool(records) or moved,
        closed=moved and state.state not in engine.LIVE_STATES,
    )


class WalletCache:
    """Wallet balances read from the ledger, and when (monotonic seconds): the funds check's
    trust rule (see module doc). Holds at most `max_size` bidders (then starts again)."""

    def __init__(self, ttl_s: float, *, max_size: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_size = max_size
        self._seen: dict[uuid.UUID, tuple[int, float]] = {}

    def covers(self, bidder: uuid.UUID, needs: int, now: float) -> bool:
        """True when a recent read of `bidder`'s balance covers `needs`."""
        seen = self._seen.get(bidder)
        return seen is not None and now - seen[1] < self.ttl_s and seen[0] >= needs

    def learn(self, balances: Iterable[tuple[uuid.UUID, int]], now: float) -> None:
        """Remember balances just read (nothing, with a zero ttl)."""
        if self.ttl_s <= 0:
            return
        if len(self._seen) > self.max_size:
            self._seen.clear()
        for bidder, balance in balances:
            self._seen[bidder] = (balance, now)
