"""Admin routes of the wallet ledger: wallet adjustments, payout resolution, the ledger check.
All admin-only; every id in a path is checked to exist (404 otherwise)."""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.accounts import store as accounts
from api.ledger import service, store
from api.ledger.errors import PayoutNotPending
from api.ledger.routes import (
    KEY_NAMESPACE,
    CurrencyCode,
    Reason,
    SignedAmount,
    TopupOut,
    currency_param,
    transfer_id_for,
    transfer_out,
    wallet_out,
)
from core.auth import Role
from core.context import require, runtime
from core.errors import FieldError, NotFound, ValidationFailed
from core.http import JSONResponse, Schema, endpoint, parse_json
from core.idempotency import check_key, request_hash, run_idempotent
from core.ids import parse_uuid


class AdjustmentBody(Schema):
    amount: SignedAmount
    reason: Reason
    currency: CurrencyCode | None = None


class FailPayoutBody(Schema):
    reason: Reason


def _payout_id(request: Request) -> uuid.UUID:
    payout_id = parse_uuid(request.path_params["payout_id"])
    if payout_id is None:
        raise NotFound("No such payout.")
    return payout_id


@endpoint(
    "Mark a pending payout paid (the bank confirmed it)", tags=("admin",),
    responses={200: None}, auth=True, roles=("admin",), errors=(401, 403, 404, 409),
)
async def complete_payout(request: Request) -> Response:
    await require(request, Role.ADMIN)
    payout_id = _payout_id(request)
    async with runtime(request).pool.acquire() as conn, conn.transaction():
        if not await service.complete_payout(conn, payout_id=payout_id):
            row = await conn.fetchrow("SELECT state FROM ledger_payouts WHERE id = $1", payout_id)
            if row is None:
                raise NotFound("No such payout.")
            if row["state"] != "paid":
                raise PayoutNotPending(params={"state": row["state"]})
    return JSONResponse({"id": str(payout_id), "state": "paid"})


@endpoint(
    "Fail a pending payout: its amount returns to the seller's payable", tags=("admin",),
    body=FailPayoutBody, responses={200: None}, auth=True, roles=("admin",),
    errors=(400, 401, 403, 404, 409, 415, 422), idempotency_key=True,
)
async def fail_payout(request: Request) -> Response:
    principal = await require(request, Role.ADMIN)
    rt = runtime(request)
    payout_id = _payout_id(request)
    body = await parse_json(request, FailPayoutBody)
    # One reversal per payout, whatever the key: the transfer id is derived from the payout.
    transfer_id = uuid.uuid5(KEY_NAMESPACE, f"payout-reversal:{payout_id}")
    key = check_key(request.headers.get("idempotency-key"))

    async def work(conn: Any) -> tuple[int, Any]:
        if await conn.fetchval("SELECT 1 FROM ledger_payouts WHERE id = $1", payout_id) is None:
            raise NotFound("No such payout.")
        transfer = await service.fail_payout(
            conn, payout_id=payout_id, transfer_id=transfer_id, reason=body.reason
        )
        return 200, {"id": str(payout_id), "state": "failed",
                     "reversal": transfer_out(transfer)}

    outcome = await run_idempotent(
        rt.pool, user_id=principal.user_id, scope=f"admin.payout-fail:{payout_id}", key=key,
        fingerprint=request_hash(body.reason), work=work,
    )
    return JSONResponse(outcome.body, status_code=outcome.status)


@endpoint(
    "Adjust a user's wallet with a reason (a ledger entry against the adjustments account)",
    tags=("admin",), body=AdjustmentBody, responses={201: TopupOut}, auth=True,
    roles=("admin",), errors=(400, 401, 402, 403, 404, 409, 415, 422), idempotency_key=True,
)
async def adjust_wallet(request: Request) -> Response:
    principal = await require(request, Role.ADMIN)
    rt = runtime(request)
    user_id = parse_uuid(request.path_params["user_id"])
    if user_id is None or await accounts.user_by_id(rt.pool, user_id) is None:
        raise NotFound("No such user.")
    body = await parse_json(request, AdjustmentBody)
    if body.amount == 0:
        raise ValidationFailed([FieldError("amount", "must not be zero")])
    currency = currency_param(request, body.currency)
    key = check_key(request.headers.get("idempotency-key"))
    transfer_id = transfer_id_for(principal.user_id, f"admin.adjust:{user_id}", key)

    async def work(conn: Any) -> tuple[int, Any]:
        transfer = await service.adjust_wallet(
            conn, user_id=user_id, amount=body.amount, currency=currency, reason=body.reason,
            admin_id=principal.user_id, transfer_id=transfer_id,
        )
        view = await service.wallet(conn, user_id, currency)
        return 201, {"transfer": transfer_out(transfer), "wallet": wallet_out(view)}

    outcome = await run_idempotent(
        rt.pool, user_id=principal.user_id, scope=f"admin.adjust:{user_id}", key=key,
        fingerprint=request_hash(str(body.amount), currency, body.reason), work=work,
    )
    return JSONResponse(outcome.body, status_code=outcome.status)


@endpoint(
    "Reconcile the ledger: recompute balances from entries and report every mismatch",
    tags=("admin",), responses={200: None}, auth=True, roles=("admin",), errors=(401, 403),
)
async def ledger_check(request: Request) -> Response:
    await require(request, Role.ADMIN)
    async with runtime(request).pool.acquire() as conn, conn.transaction(
        isolation="repeatable_read", readonly=True
    ):
        report = await store.audit(conn)
    return JSONResponse(report)


routes = [
    Route("/v1/admin/wallets/{user_id}/adjustments", adjust_wallet, methods=["POST"]),
    Route("/v1/admin/payouts/{payout_id}/complete", complete_payout, methods=["POST"]),
    Route("/v1/admin/payouts/{payout_id}/fail", fail_payout, methods=["POST"]),
    Route("/v1/admin/ledger/check", ledger_check, methods=["GET"]),
]
