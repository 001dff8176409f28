"""The order state machine: which transitions exist, who may take them, what each one does.

Pure: no I/O, time enters as an argument. The I/O shell (`api.orders.service`) asks `decide()`
before writing anything and then applies the returned `Effects` in one transaction.

    pending_payment ──pay──▶ paid ──▶ packed ──▶ out_for_delivery ──▶ delivered
          │                   │         │               │                 │ (admin, unsettled)
          ▼                   ▼         ▼               ▼                 ▼
      cancelled            refunded  refunded       refunded (admin)   refunded

`cancelled` happens before payment (the hold and the stock reservation are released);
`refunded` after it (the captured money goes back to the buyer; units that never left the
seller return to stock). Refunding a delivered order that was already settled is allowed (admins
only): the ledger then reverses the seller's payable and the fee share.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from core.errors import Conflict, Forbidden


class OrderState(enum.StrEnum):
    PENDING_PAYMENT = "pending_payment"
    PAID = "paid"
    PACKED = "packed"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"


class Actor(enum.StrEnum):
    """The caller's relation to one order (not their account role)."""

    BUYER = "buyer"
    SELLER = "seller"
    RIDER = "rider"
    ADMIN = "admin"
    SYSTEM = "system"


S, A = OrderState, Actor
TERMINAL = frozenset({S.CANCELLED, S.REFUNDED})

# Every allowed edge and who may take it. Anything missing is an invalid transition.
EDGES: dict[tuple[OrderState, OrderState], frozenset[Actor]] = {
    (S.PENDING_PAYMENT, S.PAID): frozenset({A.BUYER, A.ADMIN, A.SYSTEM}),
    (S.PENDING_PAYMENT, S.CANCELLED): frozenset({A.BUYER, A.SELLER, A.ADMIN, A.SYSTEM}),
    (S.PAID, S.PACKED): frozenset({A.SELLER, A.ADMIN}),
    (S.PAID, S.REFUNDED): frozenset({A.BUYER, A.SELLER, A.ADMIN}),
    (S.PACKED, S.OUT_FOR_DELIVERY): frozenset({A.SELLER, A.RIDER, A.ADMIN}),
    (S.PACKED, S.REFUNDED): frozenset({A.SELLER, A.ADMIN}),
    (S.OUT_FOR_DELIVERY, S.DELIVERED): frozenset({A.RIDER, A.ADMIN}),
    (S.OUT_FOR_DELIVERY, S.REFUNDED): frozenset({A.ADMIN}),
    (S.DELIVERED, S.REFUNDED): frozenset({A.ADMIN}),
}
# States from which goods are still with the seller: a refund puts the units back in stock.
_RESTOCK_FROM = frozenset({S.PAID, S.PACKED})
# States a rider may be (re)assigned in.
ASSIGNABLE = frozenset({S.PAID, S.PACKED, S.OUT_FOR_DELIVERY})
# States whose money was captured and not given back by a cancel: an admin may refund part.
REFUNDABLE_IN_PART = frozenset(set(S) - TERMINAL - {S.PENDING_PAYMENT})


class InvalidTransition(Conflict):
    code = "invalid_transition"
    titles: ClassVar[Mapping[str, str]] = {
        "en": "Invalid order transition",
        "ar": "انتقال غير صالح لحالة الطلب",
    }
    details: ClassVar[Mapping[str, str]] = {
        "en": "An order in state {from_state} cannot move to {to_state}.",
        "ar": "لا يمكن نقل طلب في الحالة {from_state} إلى {to_state}.",
    }

    def __init__(self, from_state: str, to_state: str, detail: str | None = None) -> None:
        super().__init__(
            detail,
            params={"from_state": from_state, "to_state": to_state},
            extra={"from_state": from_state, "to_state": to_state},
        )


class TransitionNotAllowed(Forbidden):
    code = "transition_not_allowed"
    titles: ClassVar[Mapping[str, str]] = {"en": "Not allowed for you", "ar": "غير مسموح لك"}
    details: ClassVar[Mapping[str, str]] = {
        "en": "You may not move this order to {to_state}.",
        "ar": "لا يُسمح لك بنقل هذا الطلب إلى {to_state}.",
    }


@dataclass(frozen=True, slots=True)
class Facts:
    """What the rules need to know about one order."""

    state: OrderState
    reserved_until: datetime | None
    settled: bool = False


@dataclass(frozen=True, slots=True)
class Effects:
    """What the shell must do, in this order, in the transition's transaction."""

    capture_hold: bool = False  # ledger: held -> escrow
    release_hold: bool = False  # ledger: held -> buyer wallet
    refund: bool = False  # ledger: escrow -> buyer wallet (full total)
    sell_stock: bool = False  # reserved -> sold
    release_stock: bool = False  # reserved -> available
    restock: bool = False  # sold -> available
    stamp: str | None = None  # paid_at / delivered_at


def parse_state(value: str) -> OrderState | None:
    try:
        return OrderState(value)
    except ValueError:
        return None


def decide(facts: Facts, to: OrderState, actor: Actor, *, now: datetime) -> Effects:
    """The effects of moving an order from `facts.state` to `to` by `actor` at `now`.

    Raises InvalidTransition (409) when the edge does not exist or its guard fails, and
    TransitionNotAllowed (403) when the edge exists but not for this actor."""
    frm = facts.state
    allowed = EDGES.get((frm, to))
    if allowed is None:
        raise InvalidTransition(frm.value, to.value)
    if actor not in allowed:
        raise TransitionNotAllowed(params={"to_state": to.value})
    if frm is S.PENDING_PAYMENT and to is S.PAID and actor is not A.ADMIN and (
        facts.reserved_until is None or facts.reserved_until <= now
    ):
        raise InvalidTransition(frm.value, to.value, "The reservation of this order expired.")
    return _effects(frm, to)


def _effects(frm: OrderState, to: OrderState) -> Effects:
    if to is S.PAID:
        return Effects(capture_hold=True, sell_stock=True, stamp="paid_at")
    if to is S.CANCELLED:
        return Effects(release_hold=True, release_stock=True)
    if to is S.REFUNDED:
        return Effects(refund=True, restock=frm in _RESTOCK_FROM)
    if to is S.DELIVERED:
        return Effects(stamp="delivered_at")
    return Effects()


def cancel_target(state: OrderState) -> OrderState:
    """Where "cancel this order" leads: cancelled before payment, refunded after it."""
    return S.CANCELLED if state is S.PENDING_PAYMENT else S.REFUNDED


def relation(
    *, user_id: object, role: str, buyer_id: object, seller_id: object, rider_id: object
) -> Actor | None:
    """The caller's relation to an order, or None when they have none (then they may not even
    see it). Admins are admins everywhere; otherwise the account role must match the link."""
    if role == "admin":
        return A.ADMIN
    if role == "buyer" and user_id == buyer_id:
        return A.BUYER
    if role == "seller" and user_id == seller_id:
        return A.SELLER
    if role == "rider" and rider_id is not None and user_id == rider_id:
        return A.RIDER
    return None
