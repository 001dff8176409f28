"""Order shapes on the wire and request bodies (pure)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from api.ledger import rules as ledger_rules
from api.orders import store
from core.http import Schema
from core.ids import UuidText

Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
StateName = Literal["pending_payment", "paid", "packed", "out_for_delivery", "delivered",
                    "cancelled", "refunded"]  # machine.OrderState (a test keeps them equal)


class TransitionBody(Schema):
    to: StateName
    reason: Reason | None = None


class CancelBody(Schema):
    reason: Reason | None = None


class AdminTransitionBody(Schema):
    to: StateName
    reason: Reason


class AdminRefundBody(Schema):
    amount: Annotated[int, msgspec.Meta(ge=1, le=ledger_rules.MAX_AMOUNT)]  # minor units
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=ledger_rules.MAX_REASON)]


class AdminCancelBody(Schema):
    reason: Reason


class AssignRiderBody(Schema):
    rider_id: UuidText


class LineView(msgspec.Struct):
    variant_id: str
    product_id: str
    title: str
    sku: str
    unit_price: int
    quantity: int


class EventView(msgspec.Struct):
    id: int
    kind: str
    from_state: str | None = msgspec.field(name="from")
    to_state: str = msgspec.field(name="to")
    actor_id: str | None = None
    actor_role: str = "system"
    reason: str | None = None
    at: str = ""
    amount: int | None = None  # refund events: the amount given back (minor units)


class OrderView(msgspec.Struct):
    id: str
    buyer_id: str
    seller_id: str
    rider_id: str | None
    state: str
    currency: str
    total: int
    lines: list[LineView]
    reserved_until: str | None
    paid_at: str | None
    delivered_at: str | None
    settled_at: str | None
    created_at: str
    updated_at: str
    events: list[EventView] | None = None


class OrderPage(msgspec.Struct):
    items: list[OrderView]
    next_cursor: str | None


class DeadLetterView(msgspec.Struct):
    id: int
    topic: str
    channels: list[str]
    payload: dict[str, Any]
    attempts: int
    last_error: str | None
    created_at: str
    dead_at: str


class DeadLetterPage(msgspec.Struct):
    items: list[DeadLetterView]
    next_cursor: str | None


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def event_view(e: store.Event) -> EventView:
    return EventView(
        id=e.id, kind=e.kind, from_state=e.from_state, to_state=e.to_state,
        actor_id=str(e.actor_id) if e.actor_id else None, actor_role=e.actor_role,
        reason=e.reason, at=iso(e.at) or "", amount=e.amount,
    )


def order_view(o: store.Order, events: list[store.Event] | None = None) -> OrderView:
    return OrderView(
        id=str(o.id), buyer_id=str(o.buyer_id), seller_id=str(o.seller_id),
        rider_id=str(o.rider_id) if o.rider_id else None, state=o.state.value,
        currency=o.currency, total=o.total,
        lines=[LineView(str(ln.variant_id), str(ln.product_id), ln.title, ln.sku, ln.unit_price,
                        ln.quantity) for ln in o.lines],
        reserved_until=iso(o.reserved_until), paid_at=iso(o.paid_at),
        delivered_at=iso(o.delivered_at), settled_at=iso(o.settled_at),
        created_at=iso(o.created_at) or "", updated_at=iso(o.updated_at) or "",
        events=[event_view(e) for e in events] if events is not None else None,
    )
