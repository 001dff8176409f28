"""HTTP routes under /v1/admin (admins only; every route checks the role first).

Forced transitions and cancellations take a mandatory reason and are recorded as `admin`
events, so the order's history says who intervened and why.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from api.orders import machine, service, store
from api.orders.machine import Actor, OrderState
from api.orders.metrics import commerce_metrics
from api.orders.routes import ORDER_ERRORS, order_id_of, order_reply, parse_state
from api.orders.views import (
    AdminCancelBody,
    AdminRefundBody,
    AdminTransitionBody,
    DeadLetterPage,
    DeadLetterView,
    OrderPage,
    order_view,
)
from api.paging import decode_cursor, encode_cursor, parse_limit
from core import outbox
from core.auth import Principal, Role
from core.context import require, runtime
from core.errors import FieldError, NotFound, ValidationFailed
from core.http import JSONResponse, decode_json, endpoint, parse_json, read_body
from core.idempotency import check_key, request_hash, run_idempotent
from core.ids import parse_uuid


def _uuid_query(request: Request, name: str) -> uuid.UUID | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    value = parse_uuid(raw)
    if value is None:
        raise ValidationFailed([FieldError(name, "must be a UUID")])
    return value


@endpoint(
    "Search orders with their event history (admins)", tags=("admin",),
    responses={200: OrderPage}, auth=True, roles=("admin",), errors=(401, 403, 422),
    query={"state": "state", "buyer_id": "uuid", "seller_id": "uuid", "rider_id": "uuid",
           "order_id": "uuid", "limit": "1..50", "cursor": "next_cursor"},
)
async def search_orders(request: Request) -> Response:
    rt = runtime(request)
    await require(request, Role.ADMIN)
    q = request.query_params
    only = _uuid_query(request, "order_id")
    if only is not None:
        order = await store.get_order(rt.pool, only)
        found = [order] if order is not None else []
        cursor = None
    else:
        scope = store.Scope(
            buyer_id=_uuid_query(request, "buyer_id"),
            seller_id=_uuid_query(request, "seller_id"),
            rider_id=_uuid_query(request, "rider_id"),
            state=parse_state(q["state"], "state").value if q.get("state") else None,
        )
        limit = parse_limit(q.get("limit"), maximum=50)
        found = await store.list_orders(
            rt.pool, scope, after=decode_cursor(q.get("cursor")), limit=limit + 1
        )
        more = len(found) > limit
        found = found[:limit]
        cursor = encode_cursor(found[-1].created_at, found[-1].id) if more else None
    events = await store.events_for(rt.pool, [o.id for o in found])
    full = [await store.get_order(rt.pool, o.id) for o in found]
    return JSONResponse(OrderPage(
        [order_view(o, events[o.id]) for o in full if o is not None], cursor
    ))


@endpoint(
    "Background deliveries that failed every retry (outbox dead letters), newest first",
    tags=("admin",), responses={200: DeadLetterPage}, auth=True, roles=("admin",),
    errors=(401, 403, 422), query={"limit": "1..100", "cursor": "next_cursor"},
)
async def dead_letters(request: Request) -> Response:
    rt = runtime(request)
    await require(request, Role.ADMIN)
    limit = parse_limit(request.query_params.get("limit"))
    cursor_raw = request.query_params.get("cursor")
    before: int | None = None
    if cursor_raw:
        if not cursor_raw.isdigit() or len(cursor_raw) > 18:  # a bigint, as the schema says
            raise ValidationFailed([FieldError("cursor", "not a cursor from this API")])
        before = int(cursor_raw)
    dead = await outbox.dead_letters(rt.pool, before=before, limit=limit + 1)
    more = len(dead) > limit
    dead = dead[:limit]

    def iso(t: datetime) -> str:
        return t.isoformat().replace("+00:00", "Z")

    items = [
        DeadLetterView(d.event.id, d.event.topic, list(d.event.channels), d.event.payload,
                       d.attempts, d.last_error, iso(d.event.created_at), iso(d.dead_at))
        for d in dead
    ]
    return JSONResponse(DeadLetterPage(items, str(dead[-1].event.id) if more else None))

@endpoint(
    "Replay one dead letter: it goes back to the relay's queue with fresh attempts",
    tags=("admin",), responses={202: None}, auth=True, roles=("admin",),
    errors=(401, 403, 404),
)
async def replay(request: Request) -> Response:
    rt = runtime(request)
    await require(request, Role.ADMIN)
    raw = request.path_params["event_id"]
    if not raw.isdigit() or len(raw) > 19:
        raise NotFound()
    async with rt.pool.acquire() as conn:
        if not await outbox.replay(conn, int(raw)):
            raise NotFound()
    return JSONResponse({"id": int(raw), "replayed": True}, status_code=202)


async def _force(
    request: Request,
    who: Principal,
    target_of: Callable[[store.Order], OrderState],
    reason: str,
) -> Response:
    """Move the path's order to `target_of(order)` as the admin `who`."""
    rt = runtime(request)
    order_id = order_id_of(request)

    async def work(conn: asyncpg.Connection) -> store.Order:
        order = await store.get_order(conn, order_id)
        if order is None:
            raise NotFound()
        return await service.transition(
            conn, order_id, target_of(order), by=service.By(Actor.ADMIN, who.user_id, "admin"),
            reason=reason,
        )

    order = await service.in_transaction(rt.pool, work)
    commerce_metrics(request).transitions.labels(order.state.value, "admin").inc()
    return await order_reply(rt.pool, order_id)


@endpoint(
    "Force an order transition with a reason (recorded as an admin event)",
    tags=("admin",), body=AdminTransitionBody, auth=True, roles=("admin",),
    errors=ORDER_ERRORS,
)
async def force_transition(request: Request) -> Response:
    who = await require(request, Role.ADMIN)
    body = await parse_json(request, AdminTransitionBody)
    to = parse_state(body.to)
    return await _force(request, who, lambda _: to, body.reason)


@endpoint(
    "Cancel an order with a reason: releases the hold before payment, refunds after",
    tags=("admin",), body=AdminCancelBody, auth=True, roles=("admin",),
    errors=ORDER_ERRORS,
)
async def admin_cancel(request: Request) -> Response:
    who = await require(request, Role.ADMIN)
    body = await parse_json(request, AdminCancelBody)
    return await _force(request, who, lambda o: machine.cancel_target(o.state), body.reason)


@endpoint(
    "Refund part of a paid order to the buyer's wallet, with a reason; the order keeps its "
    "state (its history records the refund). Idempotency-Key required: a key refunds once",
    tags=("admin",), body=AdminRefundBody, auth=True, roles=("admin",),
    errors=ORDER_ERRORS, idempotency_key=True,
)
async def admin_refund(request: Request) -> Response:
    rt = runtime(request)
    who = await require(request, Role.ADMIN)
    order_id = order_id_of(request)
    key = check_key(request.headers.get("idempotency-key"))
    if key is None:
        raise ValidationFailed(
            [FieldError("Idempotency-Key", "required: a refund moves money")])
    raw = await read_body(request, limit=4096)
    body = decode_json(raw, AdminRefundBody)

    async def work(conn: asyncpg.Connection) -> tuple[int, Any]:
        rest = await service.refund_in_part(
            conn, order_id, body.amount, reason=body.reason,
            by=service.By(Actor.ADMIN, who.user_id, "admin"),
            transfer_id=uuid.uuid5(order_id, f"refund:{key}"),
        )
        return 201, {"refundable": rest}

    outcome = await run_idempotent(
        rt.pool, user_id=who.user_id, scope="order.refund", key=key,
        fingerprint=request_hash(str(order_id), raw.strip()), work=work,
    )
    return await order_reply(rt.pool, order_id, status=outcome.status)


routes: list[BaseRoute] = [
    Route("/v1/admin/orders", search_orders, methods=["GET"]),
    Route("/v1/admin/orders/{order_id}/refunds", admin_refund, methods=["POST"]),
    Route("/v1/admin/orders/{order_id}/transition", force_transition, methods=["POST"]),
    Route("/v1/admin/orders/{order_id}/cancel", admin_cancel, methods=["POST"]),
    Route("/v1/admin/dead-letters", dead_letters, methods=["GET"]),
    Route("/v1/admin/dead-letters/{event_id}/replay", replay, methods=["POST"]),
]
