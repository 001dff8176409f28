"""A deliberately simple in-memory reference model of the wallet ledger (no accounts, no legs:
just the numbers each party should see), for the stateful tests to compare the database with.

Fees are recomputed here with Fractions rather than the integer formulas in api.ledger.rules, so
the model does not share the implementation's arithmetic."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from fractions import Fraction


@dataclass
class OrderModel:
    buyer: uuid.UUID
    amount: int
    state: str = "held"  # held | released | captured | settled
    captured: int = 0
    refunded: int = 0
    seller: uuid.UUID | None = None
    settled: int = 0
    fee: int = 0
    refunded_after_settle: int = 0

    @property
    def escrow(self) -> int:
        return self.captured - self.refunded if self.state == "captured" else 0

    @property
    def refundable(self) -> int:
        return self.captured - self.refunded if self.state in ("captured", "settled") else 0


@dataclass
class LedgerModel:
    fee_bps: int
    available: dict[uuid.UUID, int] = field(default_factory=dict)
    held: dict[uuid.UUID, int] = field(default_factory=dict)
    payable: dict[uuid.UUID, int] = field(default_factory=dict)
    orders: dict[uuid.UUID, OrderModel] = field(default_factory=dict)
    payouts: dict[uuid.UUID, tuple[uuid.UUID, int, str]] = field(default_factory=dict)
    fees: int = 0
    topped_up: int = 0
    paid_out: int = 0
    adjusted: int = 0

    def fee_on(self, amount: int) -> int:
        exact = Fraction(amount * self.fee_bps, 10_000)
        return min(amount, math.floor(exact + Fraction(1, 2)))

    def topup(self, buyer: uuid.UUID, amount: int) -> None:
        self.available[buyer] = self.available.get(buyer, 0) + amount
        self.topped_up += amount

    def can_hold(self, buyer: uuid.UUID, amount: int) -> bool:
        return self.available.get(buyer, 0) >= amount

    def hold(self, buyer: uuid.UUID, order: uuid.UUID, amount: int) -> None:
        self.available[buyer] -= amount
        self.held[buyer] = self.held.get(buyer, 0) + amount
        self.orders[order] = OrderModel(buyer, amount)

    def release(self, order: uuid.UUID) -> bool:
        o = self.orders[order]
        if o.state != "held":
            return False
        o.state = "released"
        self.held[o.buyer] -= o.amount
        self.available[o.buyer] += o.amount
        return True

    def capture(self, order: uuid.UUID) -> None:
        o = self.orders[order]
        o.state, o.captured = "captured", o.amount
        self.held[o.buyer] -= o.amount

    def refund(self, order: uuid.UUID, amount: int) -> None:
        o = self.orders[order]
        if o.state == "settled":
            assert o.seller is not None
            before = Fraction(o.refunded_after_settle * o.fee, o.settled)
            after = Fraction((o.refunded_after_settle + amount) * o.fee, o.settled)
            fee_part = math.floor(after) - math.floor(before)
            self.fees -= fee_part
            self.payable[o.seller] = self.payable.get(o.seller, 0) - (amount - fee_part)
            o.refunded_after_settle += amount
        o.refunded += amount
        self.available[o.buyer] += amount

    def settle(self, order: uuid.UUID, seller: uuid.UUID) -> None:
        o = self.orders[order]
        o.settled = o.captured - o.refunded
        o.fee = self.fee_on(o.settled)
        o.state, o.seller = "settled", seller
        self.fees += o.fee
        self.payable[seller] = self.payable.get(seller, 0) + o.settled - o.fee

    def payout(self, seller: uuid.UUID, amount: int, payout_id: uuid.UUID) -> None:
        self.payable[seller] -= amount
        self.paid_out += amount
        self.payouts[payout_id] = (seller, amount, "requested")

    def resolve_payout(self, payout_id: uuid.UUID, fail: bool) -> bool:
        seller, amount, state = self.payouts[payout_id]
        if state != "requested":
            return False
        self.payouts[payout_id] = (seller, amount, "failed" if fail else "paid")
        if fail:
            self.payable[seller] += amount
            self.paid_out -= amount
        return True

    def adjust(self, user: uuid.UUID, amount: int) -> None:
        self.available[user] = self.available.get(user, 0) + amount
        self.adjusted += amount
