"""POST /v1/checkout (buyers, with an optional Idempotency-Key)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from api.checkout import service
from api.checkout.schemas import CheckoutBody, CheckoutResult
from api.orders import delivery
from api.orders.metrics import commerce_metrics
from core.auth import Role
from core.context import require, runtime
from core.errors import AppError
from core.http import JSONResponse, decode_json, endpoint, read_body
from core.idempotency import check_key, request_hash, run_idempotent


@endpoint(
    "Check out the cart: one order per seller, stock reserved and the total held on the "
    "wallet until payment (or expiry)",
    tags=("checkout",), body=CheckoutBody, responses={201: CheckoutResult}, auth=True,
    roles=("buyer",), errors=(400, 401, 402, 403, 409, 413, 422, 429), idempotency_key=True,
)
async def checkout(request: Request) -> Response:
    rt = runtime(request)
    who = await require(request, Role.BUYER)
    key = check_key(request.headers.get("idempotency-key"))
    raw = await read_body(request, limit=4096)
    body = decode_json(raw or b"{}", CheckoutBody)

    async def work(conn: asyncpg.Connection) -> tuple[int, Any]:
        s = rt.settings  # a new checkout (a replay never gets here) takes a token
        await rt.limiter.enforce("checkout", str(who.user_id), capacity=s.checkout_rate,
                                 window_s=s.checkout_rate_window_s)
        orders = await service.place_orders(
            conn, buyer_id=who.user_id, reservation_ttl_s=rt.settings.reservation_ttl_s
        )
        if body.delivery_location is not None:
            where = body.delivery_location
            await delivery.set_dropoff(conn, [uuid.UUID(o.id) for o in orders], where.lat,
                                       where.lon)
        return 201, {"orders": [
            {"id": o.id, "state": o.state, "total": o.total, "currency": o.currency,
             "seller_id": o.seller_id, "reserved_until": o.reserved_until}
            for o in orders
        ]}

    try:
        outcome = await run_idempotent(
            rt.pool, user_id=who.user_id, scope="checkout", key=key,
            fingerprint=request_hash(raw.strip() or b"{}"), work=work,
        )
    except AppError as exc:
        commerce_metrics(request).checkouts.labels(exc.code).inc()
        raise
    commerce_metrics(request).checkouts.labels("replayed" if outcome.replayed else "ok").inc()
    headers = {"Idempotent-Replayed": "true"} if outcome.replayed else {}
    return JSONResponse(outcome.body, status_code=outcome.status, headers=headers)


routes: list[BaseRoute] = [Route("/v1/checkout", checkout, methods=["POST"])]
