"""Order transitions: the I/O shell around `api.orders.machine`.

`transition()` runs inside the caller's transaction and does, in this order: a conditional
UPDATE of the order's state (which also locks the row, so a concurrent transition of the same
order either waits and then fails its condition, or wins), the money effect through the
ledger, the stock effect on the variant rows, one `order_events` row and one outbox event.
Either all of it commits or none of it.

Ledger transfer ids are derived from the order id and the step (`transfer_id`), so a retried
step can never move money twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import asyncpg

from api.ledger import balances
from api.ledger import rules as ledger_rules
from api.ledger import service as ledger
from api.orders import store
from api.orders.machine import (
    ASSIGNABLE,
    REFUNDABLE_IN_PART,
    Actor,
    Effects,
    Facts,
    InvalidTransition,
    OrderState,
    decide,
)
from api.stock import store as stock
from core.errors import Conflict, NotFound
from core.outbox import add_event

_TRANSFER_NS = uuid.UUID("6f1c2a52-3c0e-4a53-9a5e-2f4f3d1b7c11")


def transfer_id(order_id: uuid.UUID, step: str) -> uuid.UUID:
    """The ledger transfer id of one step of one order: the same on every retry."""
    return uuid.uuid5(_TRANSFER_NS, f"order:{order_id}:{step}")


@dataclass(frozen=True, slots=True)
class By:
    """Who acts on an order: their relation to it and, unless the system, their user id."""

    actor: Actor
    user_id: uuid.UUID | None
    kind: str = "transition"  # 'admin' for admin-forced moves, 'system' for jobs


class RiderUnavailable(Conflict):
    code = "rider_unavailable"
    titles: ClassVar[Mapping[str, str]] = {"en": "Rider unavailable", "ar": "المندوب غير متاح"}
    details: ClassVar[Mapping[str, str]] = {
        "en": "That user is not an active rider.",
        "ar": "هذا المستخدم ليس مندوب توصيل نشطًا.",
    }


def channels(order: store.Order | asyncpg.Record) -> list[str]:
    """The real-time channels an order's changes are published on."""
    if isinstance(order, store.Order):
        ids = (order.id, order.buyer_id, order.seller_id, order.rider_id)
    else:
        ids = (order["id"], order["buyer_id"], order["seller_id"], order["rider_id"])
    out = [f"order:{ids[0]}", f"user:{ids[1]}", f"user:{ids[2]}"]
    if ids[3] is not None:
        out.append(f"user:{ids[3]}")
    return out


async def record(
    conn: asyncpg.Connection,
    row: store.Order | asyncpg.Record,
    *,
    kind: str,
    from_state: str | None,
    to_state: str,
    by: By,
    reason: str | None,
    topic: str = "order.state_changed",
    extra: dict[str, Any] | None = None,
    amount: int | None = None,
) -> store.Event:
    """Write the history row and its outbox event (same transaction as the change)."""
    order_id = row["id"] if isinstance(row, asyncpg.Record) else row.id
    event = await store.add_event(
        conn, order_id, kind=kind, from_state=from_state, to_state=to_state,
        actor_id=by.user_id, actor_role=by.actor.value, reason=reason, amount=amount,
    )
    payload: dict[str, Any] = {
        "type": topic, "order_id": str(order_id), "event_id": event.id, "kind": kind,
        "from": from_state, "to": to_state, "by": by.actor.value, "reason": reason,
        "at": event.at.isoformat().replace("+00:00", "Z"),
    }
    payload.update(extra or {})
    await add_event(conn, topic, payload, channels=channels(row))
    return event


async def transition(
    conn: asyncpg.Connection,
    order_id: uuid.UUID,
    to: OrderState,
    *,
    by: By,
    reason: str | None = None,
) -> store.Order:
    """Move one order to `to` with every effect, inside the caller's transaction.

    Raises NotFound, InvalidTransition (also when another request moved the order first),
    TransitionNotAllowed, or a ledger error (e.g. InsufficientFunds never happens here: the
    money was held at checkout). The caller must roll back on any exception."""
    order = await store.get_order(conn, order_id)
    if order is None:
        raise NotFound()
    now = await store.db_now(conn)
    facts = Facts(order.state, order.reserved_until, order.settled_at is not None)
    effects = decide(facts, to, by.actor, now=now)
    row = await store.set_state(conn, order_id, expected=order.state, new=to, stamp=effects.stamp)
    if row is None:
        current = await conn.fetchval("SELECT state FROM orders WHERE id = $1", order_id)
        raise InvalidTransition(
            str(current), to.value, "The order changed state while this request ran."
        )
    await _apply(conn, order, effects, reason=reason or to.value)
    await record(conn, row, kind=by.kind, from_state=order.state.value, to_state=to.value,
                 by=by, reason=reason, extra={"total": order.total, "currency": order.currency})
    updated = await store.get_order(conn, order_id)
    assert updated is not None
    return updated


async def _apply(conn: asyncpg.Connection, order: store.Order, fx: Effects, *, reason: str) -> None:
    # Ledger first, variants last: the global lock order (see api.orders.store).
    if fx.capture_hold:
        await ledger.capture_hold(
            conn, order_id=order.id, transfer_id=transfer_id(order.id, "capture")
        )
    if fx.release_hold:
        await ledger.release_hold(
            conn, order_id=order.id, transfer_id=transfer_id(order.id, "release")
        )
    if fx.refund:  # what is left after any partial refunds (`refund_in_part`)
        rest = await ledger.refundable(conn, order.id)
        if rest > 0:
            await ledger.refund_order(
                conn, order_id=order.id, amount=rest,
                transfer_id=transfer_id(order.id, "refund"), reason=reason[:200],
            )
    units = [(line.variant_id, line.quantity) for line in order.lines]
    if fx.sell_stock:
        await stock.sell_stock(conn, units)
    if fx.release_stock:
        await stock.release_stock(conn, units)
    if fx.restock:
        await stock.restock(conn, units)


async def assign_rider(
    conn: asyncpg.Connection, order_id: uuid.UUID, rider_id: uuid.UUID, *, by: By
) -> store.Order:
    """Assign (or reassign) the order's rider. Raises RiderUnavailable or InvalidTransition
    (the order is not paid yet, or already finished)."""
    is_rider = await conn.fetchval(
        "SELECT true FROM users WHERE id = $1 AND role = 'rider' AND status = 'active'", rider_id
    )
    if not is_rider:
        raise RiderUnavailable()
    row = await store.assign_rider(conn, order_id, rider_id, [s.value for s in ASSIGNABLE])
    if row is None:
        state = await conn.fetchval("SELECT state FROM orders WHERE id = $1", order_id)
        raise InvalidTransition(str(state), str(state), "A rider cannot be assigned now.")
    await record(conn, row, kind="rider_assigned", from_state=row["state"],
                 to_state=row["state"], by=by, reason=None, topic="order.rider_assigned",
                 extra={"rider_id": str(rider_id)})
    order = await store.get_order(conn, order_id)
    assert order is not None
    return order


async def settle(conn: asyncpg.Connection, order_id: uuid.UUID, *, fee_bps: int) -> bool:
    """Pay a delivered order's escrow to its seller (minus the platform fee), once. False when
    the order is not (or no longer) due. Runs in the caller's transaction."""
    row = await store.mark_settled(conn, order_id)
    if row is None:
        return False
    funds = await balances.order_funds(conn, order_id)
    # Already settled in the ledger (e.g. an admin settled it by hand), or refunded in full in
    # parts (nothing left to pay out): record it on the order instead of failing every pass.
    if funds is None or (funds["state"] != "settled" and ledger_rules.refundable(funds) > 0):
        await ledger.settle_order(
            conn, order_id=order_id, seller_id=row["seller_id"],
            transfer_id=transfer_id(order_id, "settle"), fee_bps=fee_bps,
        )
    by = By(Actor.SYSTEM, None, "settled")
    await record(conn, row, kind="settled", from_state=row["state"], to_state=row["state"],
                 by=by, reason=None, topic="order.settled")
    return True


async def refund_in_part(
    conn: asyncpg.Connection, order_id: uuid.UUID, amount: int, *, by: By, reason: str,
    transfer_id: uuid.UUID,
) -> int:
    """Give `amount` of a paid order back to the buyer's wallet (from escrow, or after
    settlement from the seller's payable and the fee) without changing its state, recorded in
    its history and announced as `order.refunded_in_part`. Returns what can still be refunded.
    The same `transfer_id` again changes nothing. Raises NotFound, InvalidTransition (not a
    paid order) or RefundExceedsCaptured."""
    state = await store.lock_state(conn, order_id)
    if state is None:
        raise NotFound()
    if state not in REFUNDABLE_IN_PART:
        raise InvalidTransition(state.value, state.value,
                                "Only a paid order that is not cancelled can be refunded in part.")
    transfer = await ledger.refund_order(conn, order_id=order_id, amount=amount,
                                         transfer_id=transfer_id, reason=reason)
    rest = await ledger.refundable(conn, order_id)
    if transfer.replayed:  # done before: its history event is there already
        return rest
    order = await store.get_order(conn, order_id)
    assert order is not None
    await record(conn, order, kind="refund", from_state=state.value, to_state=state.value, by=by,
                 reason=reason, topic="order.refunded_in_part", amount=amount,
                 extra={"amount": amount, "currency": order.currency, "refundable": rest})
    return rest


async def in_transaction(
    pool: asyncpg.Pool, work: Any, *, attempts: int = 3
) -> Any:
    """Run `await work(conn)` in a transaction, retrying the whole transaction when PostgreSQL
    aborts it as a deadlock victim or serialization failure (nothing of it was committed)."""
    for attempt in range(attempts):
        try:
            async with pool.acquire() as conn, conn.transaction():
                return await work(conn)
        except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError):
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")
