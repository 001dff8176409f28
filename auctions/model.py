"""Auction values: rules fixed at creation, the live state, bids, records and public events.

Pure: no I/O, no clock. Times are integer milliseconds since the epoch (server clock, passed in);
money is integer minor units (cents) of the auction's currency.
"""

from __future__ import annotations

import enum
import uuid
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field

MAX_PRICE = 10**12  # 10 billion in major units: far above any real lot, far below int64
MAX_INCREMENT_STEPS = 32

# Default increment table (Whatnot's live-auction steps, in cents): "from this price, the step is".
DEFAULT_STEPS: tuple[tuple[int, int], ...] = (
    (0, 100),
    (3_000, 200),
    (5_000, 300),
    (10_000, 500),
    (30_000, 1_000),
    (100_000, 2_000),
    (200_000, 5_000),
)


class State(enum.StrEnum):
    SCHEDULED = "scheduled"  # created with a future start; bids allowed once starts_at passes
    OPEN = "open"
    CLOSED = "closed"
    CANCELLED = "cancelled"


class Outcome(enum.StrEnum):
    SOLD = "sold"
    NO_SALE = "no_sale"


class PaymentState(enum.StrEnum):
    """Where a sold auction's payment stands (`auctions.payment_state`; NULL: not tried yet)."""

    AWAITING = "awaiting_payment"  # the wallet could not pay: retried until `payment_due_at`
    CAPTURED = "captured"
    FAILED = "failed"  # the payment window ran out: the order is cancelled


class BidKind(enum.StrEnum):
    MAX = "max"  # proxy bid: the server bids for you up to `amount`
    EXACT = "exact"  # a straight bid of `amount` (Whatnot "custom bid" with max off)
    NEXT = "next"  # one tap: the next increment, refused if it moved above `amount`
    BUY_NOW = "buy_now"  # take the buy-it-now price and end the auction


@dataclass(frozen=True, slots=True)
class IncrementTable:
    """Price steps: `steps[i] = (from_price, increment)`, from_price strictly increasing from 0.
    The increment depends only on the current price (eBay)."""

    steps: tuple[tuple[int, int], ...] = DEFAULT_STEPS
    _starts: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        problem = check_steps(self.steps)
        if problem:
            raise ValueError(problem)
        object.__setattr__(self, "_starts", tuple(s for s, _ in self.steps))

    def increment(self, price: int) -> int:
        return self.steps[bisect_right(self._starts, price) - 1][1]


def check_steps(steps: Sequence[Sequence[int]]) -> str | None:
    """Why `steps` is not a valid increment table, or None."""
    if not 1 <= len(steps) <= MAX_INCREMENT_STEPS:
        return f"an increment table has 1 to {MAX_INCREMENT_STEPS} steps"
    previous = -1
    for step in steps:
        if len(step) != 2:
            return "each step is [from_price, increment]"
        start, inc = step
        if start <= previous:
            return "step prices must increase strictly"
        if not 0 < inc <= MAX_PRICE:
            return f"increments must be between 1 and {MAX_PRICE}"
        previous = start
    if steps[0][0] != 0:
        return "the first step must start at price 0"
    return None


@dataclass(frozen=True, slots=True)
class Rules:
    """What the seller fixed at creation."""

    auction_id: uuid.UUID
    seller_id: uuid.UUID
    currency: str
    start_price: int
    starts_at: int
    duration_ms: int
    soft_close_ms: int = 0  # 0 = sudden death: no extension
    reserve_price: int | None = None  # hidden
    buy_now_price: int | None = None
    increments: IncrementTable = IncrementTable()

    @property
    def sudden_death(self) -> bool:
        return self.soft_close_ms == 0


@dataclass(frozen=True, slots=True)
class Auction:
    """The whole state of one auction. Never mutated: the engine returns new values."""

    rules: Rules
    state: State
    ends_at: int
    seq: int = 0  # accepted bids so far (voided ones included: seq numbers are never reused)
    price: int = 0  # current price; meaningful once bid_count > 0
    leader: uuid.UUID | None = None
    leader_max: int = 0
    second_max: int = 0  # highest maximum among the other bidders (0: nobody else bid)
    bid_count: int = 0  # accepted, not voided
    buy_now_available: bool = False
    outcome: Outcome | None = None
    closed_at: int | None = None
    cancel_reason: str | None = None

    @property
    def reserve_met(self) -> bool:
        reserve = self.rules.reserve_price
        return self.leader is not None and (reserve is None or self.price >= reserve)

    @property
    def min_next(self) -> int:
        """The lowest bid the auction accepts now."""
        if self.leader is None:
            return self.rules.start_price
        return self.price + self.rules.increments.increment(self.price)


def new_auction(rules: Rules) -> Auction:
    """A freshly created auction. It is SCHEDULED until `starts_at` and OPEN from then on."""
    return Auction(
        rules=rules,
        state=State.SCHEDULED,
        ends_at=rules.starts_at + rules.duration_ms,
        price=rules.start_price,
        buy_now_available=rules.buy_now_price is not None,
    )


@dataclass(frozen=True, slots=True)
class Bid:
    """A bid as received. `amount` is the bidder's maximum (MAX), the bid (EXACT), the most they
    agree to pay for a one-tap bid (NEXT), or ignored (BUY_NOW)."""

    bidder: uuid.UUID
    amount: int
    kind: BidKind = BidKind.MAX
    bid_id: uuid.UUID = field(default_factory=uuid.uuid4)


@dataclass(frozen=True, slots=True)
class BidRecord:
    """An accepted bid as stored: enough to replay it. NEXT bids are stored resolved (EXACT at
    the amount they bid)."""

    seq: int
    bidder: uuid.UUID
    bid_id: uuid.UUID
    kind: BidKind  # MAX, EXACT or BUY_NOW
    amount: int
    at: int
    price_after: int
    leader_after: uuid.UUID
    ends_at_after: int


# --- public events: what everybody watching may see (never a maximum, never the reserve) ---


@dataclass(frozen=True, slots=True)
class BidAccepted:
    seq: int
    price: int
    leader: uuid.UUID
    ends_at: int
    extended: bool
    reserve_met: bool
    buy_now_available: bool
    bid_count: int


@dataclass(frozen=True, slots=True)
class Extended:
    seq: int
    ends_at: int


@dataclass(frozen=True, slots=True)
class Closed:
    seq: int
    outcome: Outcome
    winner: uuid.UUID | None
    price: int | None
    reserve_met: bool


@dataclass(frozen=True, slots=True)
class Cancelled:
    seq: int
    reason: str


@dataclass(frozen=True, slots=True)
class BidVoided:
    seq: int  # the current seq (unchanged by a void)
    voided_seq: int
    reason: str
    price: int
    leader: uuid.UUID | None
    bid_count: int
    reserve_met: bool


Event = BidAccepted | Extended | Closed | Cancelled | BidVoided
