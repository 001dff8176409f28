"""HTTP routes for orders: /v1/orders.

Every route takes the order id from the path and checks the caller's relation to that order
(`machine.relation`): buyers see their orders, sellers the orders for their products, riders
the orders assigned to them, admins everything. Anyone else gets 404 (an order they have no
relation to does not exist for them).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from api.orders import machine, service, store
from api.orders.machine import Actor, OrderState
from api.orders.metrics import commerce_metrics
from api.orders.views import (
    AssignRiderBody,
    CancelBody,
    OrderPage,
    OrderView,
    TransitionBody,
    order_view,
)
from api.paging import decode_cursor, encode_cursor, parse_limit
from core.auth import Principal, Role
from core.context import require, runtime
from core.errors import FieldError, Forbidden, NotFound, ValidationFailed
from core.http import JSONResponse, decode_json, endpoint, parse_json, read_body
from core.idempotency import check_key, request_hash, run_idempotent
from core.ids import parse_uuid

ORDER_ERRORS = (400, 401, 403, 404, 409, 415, 422)


def order_id_of(request: Request) -> uuid.UUID:
    value = parse_uuid(request.path_params["order_id"])
    if value is None:
        raise NotFound()
    return value


def parse_state(raw: str, field: str = "to") -> OrderState:
    state = machine.parse_state(raw)
    if state is None:
        raise ValidationFailed([FieldError(field, "must be one of " + ", ".join(OrderState))])
    return state


async def related(conn: asyncpg.Connection | asyncpg.Pool, order_id: uuid.UUID,
                  who: Principal) -> tuple[store.Order, Actor]:
    """The order and the caller's relation to it; NotFound when they have none."""
    order = await store.get_order(conn, order_id)
    if order is None:
        raise NotFound()
    actor = machine.relation(user_id=who.user_id, role=who.role.value, buyer_id=order.buyer_id,
                             seller_id=order.seller_id, rider_id=order.rider_id)
    if actor is None:
        raise NotFound()
    return order, actor


async def order_reply(pool: asyncpg.Pool, order_id: uuid.UUID, status: int = 200) -> Response:
    order = await store.get_order(pool, order_id)
    if order is None:
        raise NotFound()
    events = (await store.events_for(pool, [order_id]))[order_id]
    return JSONResponse(order_view(order, events), status_code=status)


@endpoint(
    "Orders visible to the caller, newest first (buyers: theirs; sellers: for their "
    "products; riders: assigned to them; admins: all)",
    tags=("orders",), responses={200: OrderPage}, auth=True, errors=(401, 422),
    query={"state": "only this state", "limit": "1..100", "cursor": "next_cursor"},
)
async def list_orders(request: Request) -> Response:
    rt = runtime(request)
    who = await require(request)
    q = request.query_params
    state = parse_state(q["state"], "state").value if q.get("state") else None
    scope = {
        Role.BUYER: store.Scope(buyer_id=who.user_id, state=state),
        Role.SELLER: store.Scope(seller_id=who.user_id, state=state),
        Role.RIDER: store.Scope(rider_id=who.user_id, state=state),
        Role.ADMIN: store.Scope(state=state),
    }[who.role]
    limit = parse_limit(q.get("limit"))
    orders = await store.list_orders(rt.pool, scope, after=decode_cursor(q.get("cursor")),
                                     limit=limit + 1)
    more = len(orders) > limit
    orders = orders[:limit]
    cursor = encode_cursor(orders[-1].created_at, orders[-1].id) if more else None
    return JSONResponse(OrderPage([order_view(o) for o in orders], cursor))

@endpoint("One order with its lines and full event history", tags=("orders",),
          responses={200: OrderView}, auth=True, errors=(401, 404))
async def get_order(request: Request) -> Response:
    rt = runtime(request)
    who = await require(request)
    order_id = order_id_of(request)
    await related(rt.pool, order_id, who)
    return await order_reply(rt.pool, order_id)


async def _move(request: Request, to_of: Callable[[store.Order], OrderState],
                reason: str | None) -> Response:
    """Transition the path's order for the caller; `to_of(order)` picks the target."""
    rt = runtime(request)
    who = await require(request)
    order_id = order_id_of(request)

    async def work(conn: asyncpg.Connection) -> store.Order:
        order, actor = await related(conn, order_id, who)
        return await service.transition(
            conn, order_id, to_of(order), by=service.By(actor, who.user_id), reason=reason
        )

    order = await service.in_transaction(rt.pool, work)
    commerce_metrics(request).transitions.labels(order.state.value, "transition").inc()
    return await order_reply(rt.pool, order_id)


@endpoint(
    "Pay a pending order: the wallet hold is captured and the reserved units are sold",
    tags=("orders",), responses={200: OrderView}, auth=True, roles=("buyer",),
    errors=ORDER_ERRORS, idempotency_key=True,
)
async def pay(request: Request) -> Response:
    rt = runtime(request)
    who = await require(request, Role.BUYER)
    order_id = order_id_of(request)
    key = check_key(request.headers.get("idempotency-key"))
    raw = await read_body(request, limit=4096)

    async def work(conn: asyncpg.Connection) -> tuple[int, Any]:
        _, actor = await related(conn, order_id, who)
        order = await service.transition(
            conn, order_id, OrderState.PAID, by=service.By(actor, who.user_id)
        )
        return 200, {"id": str(order.id), "state": order.state.value}

    await run_idempotent(rt.pool, user_id=who.user_id, scope=f"pay:{order_id}", key=key,
                         fingerprint=request_hash(raw.strip() or b"{}"), work=work)
    commerce_metrics(request).transitions.labels("paid", "transition").inc()
    return await order_reply(rt.pool, order_id)


@endpoint(
    "Move an order along its life cycle (packed, out_for_delivery, delivered...) as its "
    "seller, rider or buyer, where the rules allow",
    tags=("orders",), body=TransitionBody, responses={200: OrderView}, auth=True,
    errors=ORDER_ERRORS,
)
async def transition(request: Request) -> Response:
    await require(request)  # 401 before the body is even read (then 422)
    body = await parse_json(request, TransitionBody)
    to = parse_state(body.to)
    return await _move(request, lambda _o: to, body.reason)


@endpoint(
    "Cancel an order: before payment the hold and reservation are released; after "
    "payment the buyer is refunded",
    tags=("orders",), body=CancelBody, body_required=False, responses={200: OrderView},
    auth=True,
    errors=ORDER_ERRORS,
)
async def cancel(request: Request) -> Response:
    await require(request)  # 401 before the body is even read
    raw = await read_body(request, limit=4096)
    body = decode_json(raw, CancelBody) if raw.strip() else CancelBody()
    return await _move(request, lambda o: machine.cancel_target(o.state),
                       body.reason or "cancelled")


@endpoint(
    "Assign (or reassign) the rider who delivers a paid order (its seller or an admin)",
    tags=("orders",), body=AssignRiderBody, responses={200: OrderView}, auth=True,
    roles=("seller", "admin"), errors=ORDER_ERRORS,
)
async def assign_rider(request: Request) -> Response:
    rt = runtime(request)
    who = await require(request, Role.SELLER, Role.ADMIN)
    order_id = order_id_of(request)
    body = await parse_json(request, AssignRiderBody)
    rider_id = parse_uuid(body.rider_id)
    if rider_id is None:
        raise ValidationFailed([FieldError("rider_id", "must be a UUID")])

    async def work(conn: asyncpg.Connection) -> store.Order:
        _, actor = await related(conn, order_id, who)
        if actor not in (Actor.SELLER, Actor.ADMIN):
            raise Forbidden()
        return await service.assign_rider(conn, order_id, rider_id,
                                          by=service.By(actor, who.user_id))

    await service.in_transaction(rt.pool, work)
    return await order_reply(rt.pool, order_id)


routes: list[BaseRoute] = [
    Route("/v1/orders", list_orders, methods=["GET"]),
    Route("/v1/orders/{order_id}", get_order, methods=["GET"]),
    Route("/v1/orders/{order_id}/pay", pay, methods=["POST"]),
    Route("/v1/orders/{order_id}/transitions", transition, methods=["POST"]),
    Route("/v1/orders/{order_id}/cancel", cancel, methods=["POST"]),
    Route("/v1/orders/{order_id}/assign-rider", assign_rider, methods=["POST"]),
]
