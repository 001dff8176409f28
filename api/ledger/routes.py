"""HTTP routes of the wallet ledger for buyers and sellers: wallet, top-ups, statement, payout
details, payouts, balance. Every route acts on the caller's own accounts (no id in the path), so
no user can name another's; admin routes are in `admin_routes`."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.ledger import payout_details, rules, service, store
from api.ledger.batcher import LedgerBatcher
from api.ledger.crypto import DecryptionFailed, KeyBox
from api.ledger.errors import (
    EncryptionUnavailable,
    PaymentProviderUnavailable,
    PayoutDetailsUnreadable,
)
from api.ledger.payments import PaymentProvider, provider_for
from core.auth import Role
from core.context import Runtime, require, runtime
from core.errors import Conflict, FieldError, NotFound, ValidationFailed
from core.http import JSONResponse, Schema, endpoint, parse_json
from core.idempotency import Outcome, check_key, request_hash, run_idempotent, run_then_store

log = logging.getLogger("souk.ledger")
KEY_NAMESPACE = uuid.UUID("6f1c2b52-3d4e-4c8a-9a57-2f5b8f0e7a10")
STATEMENT_PAGE_MAX = 100
STATEMENT_PAGE_DEFAULT = 50

TOPUP_MAX = 10_000_000  # 100,000.00 per top-up
Amount = Annotated[int, msgspec.Meta(ge=1, le=rules.MAX_AMOUNT)]
TopupAmount = Annotated[int, msgspec.Meta(ge=1, le=TOPUP_MAX)]
SignedAmount = Annotated[int, msgspec.Meta(ge=-rules.MAX_AMOUNT, le=rules.MAX_AMOUNT)]
CurrencyCode = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")]
Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=rules.MAX_REASON)]


class TopupBody(Schema):
    amount: TopupAmount
    currency: CurrencyCode | None = None


class PayoutBody(Schema):
    amount: Amount
    currency: CurrencyCode | None = None


class WalletOut(msgspec.Struct):
    currency: str
    available: int
    held: int


class TransferOut(msgspec.Struct):
    id: str
    kind: str
    amount: int
    order_id: str | None
    reference_id: str | None
    created_at: str


class TopupOut(msgspec.Struct):
    transfer: TransferOut
    wallet: WalletOut


class StatementEntry(msgspec.Struct):
    transfer_id: str
    kind: str
    amount: int
    balance_after: int
    order_id: str | None
    created_at: str


class StatementOut(msgspec.Struct):
    currency: str
    entries: list[StatementEntry]
    next_cursor: str | None


class SellerBalanceOut(msgspec.Struct):
    currency: str
    payable: int


class PayoutOut(msgspec.Struct):
    transfer: TransferOut
    balance: SellerBalanceOut


def transfer_out(t: service.Transfer) -> dict[str, Any]:
    return t.as_json()


def currency_param(request: Request, given: str | None = None) -> str:
    """The request's currency: one of the server's CURRENCIES (DEFAULT_CURRENCY when unset),
    so no request creates wallets, ledger accounts or metric labels for others."""
    settings = runtime(request).settings
    value = given or request.query_params.get("currency") or settings.default_currency
    if not rules.CURRENCY_RE.match(value):
        raise ValidationFailed([FieldError("currency", "an ISO 4217 code such as USD")])
    accepted = settings.accepted_currencies
    if value not in accepted:
        raise ValidationFailed([FieldError("currency", "one of " + ", ".join(sorted(accepted)))])
    return value


def transfer_id_for(user_id: uuid.UUID, scope: str, key: str | None) -> uuid.UUID:
    """The ledger transfer id for an HTTP request: derived from the Idempotency-Key, so the
    same key always names the same transfer (random when no key is sent)."""
    if key is None:
        return uuid.uuid4()
    return uuid.uuid5(KEY_NAMESPACE, f"{user_id}:{scope}:{key}")


def _key_box(request: Request) -> KeyBox:
    box: KeyBox | None = getattr(request.app.state, "payout_keys", None)
    if box is None:
        raise EncryptionUnavailable()
    return box


@endpoint(
    "Top up the wallet through the configured payment provider",
    tags=("wallet",), body=TopupBody, responses={201: TopupOut}, auth=True, roles=("buyer",),
    errors=(400, 401, 403, 409, 415, 422, 429, 503), idempotency_key=True,
)
async def topup(request: Request) -> Response:
    principal = await require(request, Role.BUYER)
    rt = runtime(request)
    body = await parse_json(request, TopupBody)
    currency = currency_param(request, body.currency)
    provider = provider_for(rt.settings.payment_provider)
    if provider is None:
        raise PaymentProviderUnavailable()
    key = check_key(request.headers.get("idempotency-key"))
    transfer_id = transfer_id_for(principal.user_id, "wallet.topup", key)
    batcher: LedgerBatcher = request.state.ledger_batcher  # opened by the app's lifespan
    outcome = await _topup_batched(rt, batcher, principal.user_id, body.amount, currency,
                                   provider, key, transfer_id)
    return JSONResponse(outcome.body, status_code=outcome.status)


async def _topup_batched(rt: Runtime, batcher: LedgerBatcher, user_id: uuid.UUID, amount: int,
                         currency: str, provider: PaymentProvider, key: str | None,
                         transfer_id: uuid.UUID) -> Outcome:
    """The top-up through the ledger's group commit (api/ledger/batcher.py): the transfer is
    committed in a batch with other requests' before the answer, and its id is derived from
    the Idempotency-Key, so the key row is written after it (`run_then_store`): a replay still
    never charges or credits twice. The wallet in the answer is read after the commit."""

    async def work() -> tuple[int, Any]:
        s = rt.settings  # a new top-up (a stored answer never gets here) takes a token
        await rt.limiter.enforce("wallet-topup", str(user_id), capacity=s.topup_rate,
                                 window_s=s.topup_rate_window_s)
        charge = await provider.charge(user_id=user_id, amount=amount, currency=currency,
                                       idempotency_id=transfer_id)
        transfer = await batcher.topup(
            user_id=user_id, amount=amount, currency=currency, transfer_id=transfer_id,
            metadata={"provider": charge.provider, "provider_ref": charge.reference},
        )
        view = await service.wallet(rt.pool, user_id, currency)
        return 201, {"transfer": transfer_out(transfer), "wallet": wallet_out(view)}

    return await run_then_store(
        rt.pool, user_id=user_id, scope="wallet.topup", key=key,
        fingerprint=request_hash(str(amount), currency), work=work,
    )


def wallet_out(view: service.WalletView) -> dict[str, Any]:
    return {"currency": view.currency, "available": view.available, "held": view.held}


@endpoint(
    "The caller's wallet balance", tags=("wallet",), responses={200: WalletOut}, auth=True,
    errors=(401, 422), query={"currency": "ISO 4217 code (default: the server's currency)"},
)
async def get_wallet(request: Request) -> Response:
    principal = await require(request)
    view = await service.wallet(runtime(request).pool, principal.user_id, currency_param(request))
    return JSONResponse(wallet_out(view))


@endpoint(
    "The caller's wallet statement: entries newest first, with running balance",
    tags=("wallet",), responses={200: StatementOut}, auth=True, errors=(401, 422),
    query={
        "currency": "ISO 4217 code",
        "limit": f"page size, 1 to {STATEMENT_PAGE_MAX} (default {STATEMENT_PAGE_DEFAULT})",
        "cursor": "next_cursor of the previous page",
    },
)
async def statement(request: Request) -> Response:
    principal = await require(request)
    rt = runtime(request)
    currency = currency_param(request)
    limit = int_param(request, "limit", STATEMENT_PAGE_DEFAULT, 1, STATEMENT_PAGE_MAX)
    cursor = int_param(request, "cursor", None, 1, 2**62)
    key = rules.user_account(rules.AccountKind.BUYER_WALLET, principal.user_id, currency)
    account = await store.account_id(rt.pool, key)
    rows = [] if account is None else await store.statement(
        rt.pool, account, before=cursor, limit=limit + 1
    )
    more = len(rows) > limit
    rows = rows[:limit]
    entries = [
        {
            "transfer_id": str(r["transfer_id"]),
            "kind": r["kind"],
            "amount": r["amount"],
            "balance_after": r["balance_after"],
            "order_id": str(r["order_id"]) if r["order_id"] else None,
            "created_at": r["created_at"].isoformat().replace("+00:00", "Z"),
        }
        for r in rows
    ]
    next_cursor = str(rows[-1]["id"]) if more and rows else None
    return JSONResponse({"currency": currency, "entries": entries, "next_cursor": next_cursor})


def int_param(request: Request, name: str, default: int | None, low: int, high: int) -> Any:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise ValidationFailed([FieldError(name, f"an integer from {low} to {high}")])
    return value


@endpoint(
    "Set the caller's payout bank details (stored encrypted)", tags=("seller",),
    body=payout_details.PayoutDetailsBody, responses={200: payout_details.PayoutDetailsView},
    auth=True, roles=("seller",), errors=(400, 401, 403, 415, 422, 503),
)
async def put_payout_details(request: Request) -> Response:
    principal = await require(request, Role.SELLER)
    box = _key_box(request)
    details = (await parse_json(request, payout_details.PayoutDetailsBody)).normalized()
    updated = await payout_details.save(runtime(request).pool, box, principal.user_id, details)
    return JSONResponse(payout_details.view(details, updated))


@endpoint(
    "The caller's payout bank details, masked", tags=("seller",),
    responses={200: payout_details.PayoutDetailsView}, auth=True, roles=("seller",),
    errors=(401, 403, 404, 503),
)
async def get_payout_details(request: Request) -> Response:
    principal = await require(request, Role.SELLER)
    try:
        loaded = await payout_details.load(
            runtime(request).pool, _key_box(request), principal.user_id
        )
    except DecryptionFailed:
        log.error("payout details failed to decrypt", extra={"seller_id": str(principal.user_id)})
        raise PayoutDetailsUnreadable() from None
    if loaded is None:
        raise NotFound("No payout details are set.")
    return JSONResponse(payout_details.view(*loaded))


class PayoutDetailsMissing(Conflict):
    code = "payout_details_missing"
    titles: ClassVar[Mapping[str, str]] = {
        "en": "Payout details missing",
        "ar": "بيانات الصرف غير موجودة",
    }
    details: ClassVar[Mapping[str, str]] = {
        "en": "Set your payout bank details before requesting a payout.",
        "ar": "أدخل بيانات حسابك البنكي قبل طلب الصرف.",
    }


@endpoint(
    "Request a payout of the caller's payable balance to their bank", tags=("seller",),
    body=PayoutBody, responses={201: PayoutOut}, auth=True, roles=("seller",),
    errors=(400, 401, 402, 403, 409, 415, 422), idempotency_key=True,
)
async def request_payout(request: Request) -> Response:
    principal = await require(request, Role.SELLER)
    rt = runtime(request)
    body = await parse_json(request, PayoutBody)
    currency = currency_param(request, body.currency)
    key = check_key(request.headers.get("idempotency-key"))
    transfer_id = transfer_id_for(principal.user_id, "seller.payout", key)

    async def work(conn: Any) -> tuple[int, Any]:
        if not await payout_details.exists(conn, principal.user_id):
            raise PayoutDetailsMissing()
        transfer = await service.request_payout(
            conn, seller_id=principal.user_id, amount=body.amount, currency=currency,
            transfer_id=transfer_id,
        )
        payable = await service.seller_payable(conn, principal.user_id, currency)
        return 201, {
            "transfer": transfer_out(transfer),
            "balance": {"currency": currency, "payable": payable},
        }

    outcome = await run_idempotent(
        rt.pool, user_id=principal.user_id, scope="seller.payout", key=key,
        fingerprint=request_hash(str(body.amount), currency), work=work,
    )
    return JSONResponse(outcome.body, status_code=outcome.status)


class PayoutItem(msgspec.Struct):
    id: str
    amount: int
    currency: str
    state: str
    created_at: str
    updated_at: str


class PayoutList(msgspec.Struct):
    payouts: list[PayoutItem]


def iso(value: Any) -> str:
    return str(value.isoformat().replace("+00:00", "Z"))


@endpoint(
    "The caller's most recent payouts (newest first) and their state", tags=("seller",),
    responses={200: PayoutList}, auth=True, roles=("seller",), errors=(401, 403, 422),
    query={"limit": "1 to 100 (default 50)"},
)
async def list_payouts(request: Request) -> Response:
    principal = await require(request, Role.SELLER)
    limit = int_param(request, "limit", 50, 1, 100)
    rows = await store.payouts_of(runtime(request).pool, principal.user_id, limit=limit)
    return JSONResponse({"payouts": [
        {"id": str(r["id"]), "amount": r["amount"], "currency": r["currency"],
         "state": r["state"], "created_at": iso(r["created_at"]),
         "updated_at": iso(r["updated_at"])}
        for r in rows
    ]})


@endpoint(
    "The caller's payable balance (settled sales minus fees and payouts)", tags=("seller",),
    responses={200: SellerBalanceOut}, auth=True, roles=("seller",), errors=(401, 403, 422),
    query={"currency": "ISO 4217 code"},
)
async def seller_balance(request: Request) -> Response:
    principal = await require(request, Role.SELLER)
    currency = currency_param(request)
    payable = await service.seller_payable(runtime(request).pool, principal.user_id, currency)
    return JSONResponse({"currency": currency, "payable": payable})


routes = [
    Route("/v1/wallet", get_wallet, methods=["GET"]),
    Route("/v1/wallet/topups", topup, methods=["POST"]),
    Route("/v1/wallet/statement", statement, methods=["GET"]),
    Route("/v1/seller/payout-details", get_payout_details, methods=["GET"]),
    Route("/v1/seller/payout-details", put_payout_details, methods=["PUT"]),
    Route("/v1/seller/payouts", request_payout, methods=["POST"]),
    Route("/v1/seller/payouts", list_payouts, methods=["GET"]),
    Route("/v1/seller/balance", seller_balance, methods=["GET"]),
]
