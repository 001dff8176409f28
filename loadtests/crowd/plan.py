"""The show-night plan: what the set-up made (accounts, show, auction, products) and when each
phase happens, shared by the orchestrator, the locust master and every worker as one JSON file.
Pure: no I/O beyond (de)serialising; times are epoch seconds passed in."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from auctions.model import DEFAULT_STEPS

PLAN_ENV = "SOUK_PLAN"  # names the plan file for every locust process
ROLES = ("viewers", "bidders", "chatters", "shoppers", "sellers", "riders", "whep")


@dataclass(frozen=True)
class Account:
    id: str
    token: str


@dataclass
class Plan:
    """Everything a user needs; written once before locust starts."""

    base_url: str
    started_at: float  # epoch s: when the run (locust) starts
    seconds: float
    warmup_s: float
    show_id: str
    auction_id: str
    auction_ends_at_ms: int  # as scheduled; soft close may push it later
    frenzy_s: float  # bidders speed up this long before the auction's end
    flash_variant_id: str
    flash_units: int
    flash_at: float  # epoch s
    catalog_variant_ids: list[str]
    counts: dict[str, int]
    bid_rate: float = 0.1  # bids/s per bidder before the frenzy
    frenzy_bid_rate: float = 1.0
    chat_rate: float = 0.1  # messages/s per chatter
    rider_hz: float = 0.2  # positions/s per rider (Traccar's default is one per 30 s)
    shopper_pause_s: float = 8.0  # between a shopper's purchases (CHECKOUT_RATE: 10 a minute)
    seller_interval_s: float = 20.0
    delivery_sample: float = 1.0  # share of pushed messages reported as locust requests
    workers: int = 1  # locust worker processes (accounts are split between them)
    start_price: int = 1000
    funds: int = 0  # each bidder's wallet (bids above it are not sent)
    features: dict[str, bool] = field(default_factory=dict)
    accounts: dict[str, list[Account]] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def load(cls, path: Path) -> Plan:
        raw: dict[str, Any] = json.loads(path.read_text())
        raw["accounts"] = {role: [Account(**a) for a in items]
                           for role, items in raw.get("accounts", {}).items()}
        return cls(**raw)

    # --- phases -------------------------------------------------------------------------

    def in_warmup(self, now: float) -> bool:
        return now < self.started_at + self.warmup_s

    def frenzy(self, now: float, ends_at_ms: int | None = None) -> bool:
        """True in the last `frenzy_s` before the auction's (possibly extended) end."""
        ends = (ends_at_ms if ends_at_ms is not None else self.auction_ends_at_ms) / 1000
        return ends - self.frenzy_s <= now

    def flash_open(self, now: float) -> bool:
        return now >= self.flash_at

    def account(self, role: str, worker_index: int, workers: int, n: int) -> Account:
        """The n-th account of `role` this worker hands out: workers take disjoint slices
        (worker i takes i, i + workers, ...), wrapping around only when there are more users
        than accounts."""
        pool = self.accounts.get(role) or []
        if not pool:
            raise LookupError(f"the plan has no {role} accounts")
        return pool[(worker_index + n * max(1, workers)) % len(pool)]


def increment(price: int, steps: tuple[tuple[int, int], ...] = DEFAULT_STEPS) -> int:
    """The auction's default increment at `price` (the table every set-up auction uses)."""
    step = steps[0][1]
    for start, inc in steps:
        if price >= start:
            step = inc
    return step


def next_bid(price: int, leading: bool, started: bool, start_price: int, extra_steps: int) -> int:
    """A bidder's next MAX bid: the lowest acceptable amount plus `extra_steps` increments
    (a proxy ceiling above it). 0 means "do not bid" (already leading)."""
    if leading:
        return 0
    amount = price + increment(price) if started else start_price
    for _ in range(extra_steps):
        amount += increment(amount)
    return amount
