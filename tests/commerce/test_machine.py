"""The order state machine, tested directly (pure: no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.checkout.rules import Item, split
from api.orders.machine import (
    EDGES,
    TERMINAL,
    Actor,
    Facts,
    InvalidTransition,
    OrderState,
    TransitionNotAllowed,
    cancel_target,
    decide,
    relation,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)
S = OrderState


def facts(state: OrderState, *, settled: bool = False, until: datetime | None = LATER) -> Facts:
    return Facts(state, until, settled)


def test_happy_path_effects() -> None:
    pay = decide(facts(S.PENDING_PAYMENT), S.PAID, Actor.BUYER, now=NOW)
    assert pay.capture_hold
    assert pay.sell_stock
    assert not pay.release_hold
    cancel = decide(facts(S.PENDING_PAYMENT), S.CANCELLED, Actor.SYSTEM, now=NOW)
    assert cancel.release_hold
    assert cancel.release_stock
    assert not cancel.refund
    refund = decide(facts(S.PAID), S.REFUNDED, Actor.BUYER, now=NOW)
    assert refund.refund
    assert refund.restock
    late = decide(facts(S.OUT_FOR_DELIVERY), S.REFUNDED, Actor.ADMIN, now=NOW)
    assert late.refund
    assert not late.restock


def test_guards() -> None:
    with pytest.raises(InvalidTransition):
        decide(facts(S.PENDING_PAYMENT, until=NOW), S.PAID, Actor.BUYER, now=NOW)
    settled = decide(facts(S.DELIVERED, settled=True), S.REFUNDED, Actor.ADMIN, now=NOW)
    assert settled.refund
    assert not settled.restock
    with pytest.raises(TransitionNotAllowed):
        decide(facts(S.DELIVERED, settled=True), S.REFUNDED, Actor.SELLER, now=NOW)
    with pytest.raises(TransitionNotAllowed):
        decide(facts(S.PACKED), S.OUT_FOR_DELIVERY, Actor.BUYER, now=NOW)
    with pytest.raises(InvalidTransition) as info:
        decide(facts(S.PAID), S.DELIVERED, Actor.ADMIN, now=NOW)
    assert info.value.code == "invalid_transition"
    assert info.value.status == 409
    assert cancel_target(S.PENDING_PAYMENT) is S.CANCELLED
    assert cancel_target(S.PACKED) is S.REFUNDED


@given(st.sampled_from(list(S)), st.sampled_from(list(S)), st.sampled_from(list(Actor)))
@settings(max_examples=200)
def test_decide_agrees_with_the_table(frm: OrderState, to: OrderState, actor: Actor) -> None:
    allowed = EDGES.get((frm, to))
    try:
        decide(facts(frm), to, actor, now=NOW)
    except InvalidTransition:
        assert allowed is None
    except TransitionNotAllowed:
        assert allowed is not None
        assert actor not in allowed
    else:
        assert allowed is not None
        assert actor in allowed
        assert frm not in TERMINAL


@given(st.lists(st.tuples(st.sampled_from(list(S)), st.sampled_from(list(Actor))),
                max_size=12))
@settings(max_examples=150)
def test_random_walks_only_move_forward(steps: list[tuple[OrderState, Actor]]) -> None:
    """Whatever is attempted, an order never leaves a terminal state, is paid at most once and
    is only refunded after a payment."""
    state, paid = S.PENDING_PAYMENT, 0
    for to, actor in steps:
        try:
            fx = decide(facts(state), to, actor, now=NOW)
        except (InvalidTransition, TransitionNotAllowed):
            continue
        assert state not in TERMINAL
        paid += fx.capture_hold
        if fx.refund:
            assert paid == 1
        if fx.release_hold:
            assert paid == 0
        state = to
    assert paid <= 1


def test_relation() -> None:
    b, s, r = object(), object(), object()
    rel = {"buyer_id": b, "seller_id": s, "rider_id": r}
    assert relation(user_id=b, role="buyer", **rel) is Actor.BUYER
    assert relation(user_id=b, role="seller", **rel) is None  # role and link must agree
    assert relation(user_id=r, role="rider", **rel) is Actor.RIDER
    assert relation(user_id=object(), role="admin", **rel) is Actor.ADMIN
    assert relation(user_id=object(), role="buyer", **rel) is None
    assert relation(user_id=r, role="rider", buyer_id=b, seller_id=s, rider_id=None) is None


def test_split_one_order_per_seller_and_currency() -> None:
    import uuid

    a, b = uuid.UUID(int=1), uuid.UUID(int=2)

    def item(seller: uuid.UUID, cur: str, n: int, price: int) -> Item:
        return Item(uuid.UUID(int=100 + n), uuid.uuid4(), seller, cur, "t", f"s{n}", price, 2)

    groups = split([item(b, "USD", 1, 100), item(a, "USD", 2, 50), item(a, "EUR", 3, 10),
                    item(a, "USD", 4, 5)])
    assert [(g.seller_id, g.currency, g.total) for g in groups] == [
        (a, "EUR", 20), (a, "USD", 110), (b, "USD", 200)]
