"""HTTP routes for auctions (`/v1/auctions...`).

The handlers are module-level functions of (service, request), listed in `ROUTES`;
`build_routes(service_of)` binds them to how a request reaches the process's AuctionService
(by default `request.state.auctions`, which the composition root puts in the lifespan state),
so this module imports nothing from `api`.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from auctions.errors import AuctionNotFound
from auctions.model import MAX_PRICE, BidKind
from auctions.service import AuctionService, NewAuction
from auctions.store import to_ms
from core.auth import Role
from core.context import authenticate, require
from core.errors import FieldError, ValidationFailed
from core.http import JSONResponse, Schema, endpoint, parse_json
from core.idempotency import check_key
from core.ids import parse_uuid

Price = Annotated[int, msgspec.Meta(ge=1, le=MAX_PRICE)]
Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
MAX_PAGE = 500
# Idempotency-Key → bid_id: the same key always names the same bid of the same bidder.
_KEY_NAMESPACE = uuid.UUID("2d7e3b8a-93a4-4d0e-8f1e-5c1c0f3a7b11")


class CreateAuctionBody(Schema):
    variant_id: uuid.UUID
    start_price: Price
    duration_s: Annotated[int, msgspec.Meta(ge=5, le=7 * 86_400)]
    show_id: uuid.UUID | None = None
    soft_close_s: Annotated[int, msgspec.Meta(ge=0, le=600)] = 10
    reserve_price: Price | None = None
    buy_now_price: Price | None = None
    starts_at: Annotated[datetime, msgspec.Meta(tz=True)] | None = None
    increments: (
        Annotated[
            list[Annotated[list[Annotated[int, msgspec.Meta(ge=0, le=MAX_PRICE)]],
                           msgspec.Meta(min_length=2, max_length=2)]],
            msgspec.Meta(min_length=1, max_length=32),
        ]
        | None
    ) = None


class BidBody(Schema):
    amount: Annotated[int, msgspec.Meta(ge=0, le=MAX_PRICE)]
    kind: BidKind = BidKind.MAX
    bid_id: uuid.UUID | None = None


class ReasonBody(Schema):
    reason: Reason


class AuctionView(msgspec.Struct):
    id: str
    state: str
    price: int
    leader: str | None
    seq: int
    ends_at: str
    ends_at_ms: int
    currency: str
    min_next_bid: int | None
    reserve_met: bool
    buy_now_price: int | None


class BidAckView(msgspec.Struct):
    accepted: bool
    seq: int
    amount: int
    price: int
    ends_at: int
    leading: bool
    replayed: bool


ServiceOf = Callable[[Request], AuctionService]


def _default_service(request: Request) -> AuctionService:
    svc: AuctionService = request.state.auctions
    return svc


def _auction_id(request: Request) -> uuid.UUID:
    value = parse_uuid(request.path_params["auction_id"])
    if value is None:
        raise AuctionNotFound()
    return value


def _page(request: Request) -> tuple[int, int]:
    try:
        after = int(request.query_params.get("after", "0"))
        limit = int(request.query_params.get("limit", "100"))
    except ValueError:
        raise ValidationFailed([FieldError("after", "after and limit are integers")]) from None
    if after < 0 or not 1 <= limit <= MAX_PAGE:
        raise ValidationFailed([FieldError("limit", f"after >= 0, limit 1 to {MAX_PAGE}")])
    return after, limit


_STATES = frozenset({"scheduled", "open", "closed", "cancelled"})


def _list_query(
    request: Request,
) -> tuple[uuid.UUID | None, list[str] | None, uuid.UUID | None, int]:
    q = request.query_params
    errors: list[FieldError] = []
    show_id = parse_uuid(q["show_id"]) if "show_id" in q else None
    if "show_id" in q and show_id is None:
        errors.append(FieldError("show_id", "not an id"))
    states = [p for p in q.get("state", "").split(",") if p] or None
    if states and not set(states) <= _STATES:
        errors.append(FieldError("state", "one or more of " + ", ".join(sorted(_STATES))))
    after_id = parse_uuid(q["cursor"]) if "cursor" in q else None
    if "cursor" in q and after_id is None:
        errors.append(FieldError("cursor", "malformed cursor"))
    limit = 20
    raw = q.get("limit", "20")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        errors.append(FieldError("limit", f"an integer from 1 to {MAX_PAGE}"))
    else:
        limit = int(raw)
    if errors:
        raise ValidationFailed(errors)
    return show_id, states, after_id, limit


@endpoint("Create an auction for one of your variants", tags=("auctions",),
          body=CreateAuctionBody, responses={201: AuctionView}, auth=True,
          roles=("seller",), errors=(400, 401, 403, 413, 415, 422))
async def create(svc: AuctionService, request: Request) -> Response:
    principal = await require(request, Role.SELLER)
    body = await parse_json(request, CreateAuctionBody)
    row = await svc.create(principal, NewAuction(
        variant_id=body.variant_id, start_price=body.start_price,
        duration_s=body.duration_s, show_id=body.show_id, soft_close_s=body.soft_close_s,
        reserve_price=body.reserve_price, buy_now_price=body.buy_now_price,
        starts_at_ms=to_ms(body.starts_at) if body.starts_at else None,
        increments=tuple((s[0], s[1]) for s in body.increments) if body.increments else None,
    ))
    return JSONResponse(await svc.view(row.auction.rules.auction_id), status_code=201)


@endpoint("An auction's public state", tags=("auctions",), responses={200: AuctionView},
          errors=(404,))
async def show(svc: AuctionService, request: Request) -> Response:
    return JSONResponse(await svc.view(_auction_id(request)))


@endpoint("Accepted bids, in seq order (public; no maxima)", tags=("auctions",),
          query={"after": "seq to start after (default 0)", "limit": "1 to 500"},
          errors=(404, 422))
async def bids(svc: AuctionService, request: Request) -> Response:
    after, limit = _page(request)
    items = await svc.bids(_auction_id(request), after=after, limit=limit)
    return JSONResponse({"items": items, "next_after": items[-1]["seq"] if items else after})


@endpoint("Place a bid (same rules as the websocket `bid` op)", tags=("auctions",),
          body=BidBody, responses={201: BidAckView}, auth=True, roles=("buyer",),
          errors=(401, 402, 403, 404, 409, 422, 429, 503), idempotency_key=True)
async def place(svc: AuctionService, request: Request) -> Response:
    principal = await require(request, Role.BUYER)
    body = await parse_json(request, BidBody)
    key = check_key(request.headers.get("idempotency-key"))
    bid_id = body.bid_id
    if bid_id is None:
        if key is None:
            raise ValidationFailed([FieldError("bid_id",
                                               "send bid_id or an Idempotency-Key header")])
        bid_id = uuid.uuid5(_KEY_NAMESPACE, key)
    ack = await svc.place_bid(
        principal, _auction_id(request), amount=body.amount, bid_id=bid_id, kind=body.kind
    )
    return JSONResponse(ack.frame(), status_code=200 if ack.replayed else 201)


@endpoint("Cancel an auction with a reason (admins; its seller before the first bid)",
          tags=("auctions", "admin"), body=ReasonBody, responses={200: AuctionView},
          auth=True, roles=("admin", "seller"), errors=(401, 403, 404, 409, 422))
async def cancel(svc: AuctionService, request: Request) -> Response:
    principal = await require(request)
    body = await parse_json(request, ReasonBody)
    auction_id = _auction_id(request)
    await svc.cancel(principal, auction_id, body.reason)
    return JSONResponse(await svc.view(auction_id))


@endpoint("Void an accepted bid (admin, with a reason); the price is recomputed",
          tags=("auctions", "admin"), body=ReasonBody, auth=True, roles=("admin",),
          errors=(401, 403, 404, 409, 422))
async def void(svc: AuctionService, request: Request) -> Response:
    principal = await require(request, Role.ADMIN)
    body = await parse_json(request, ReasonBody)
    auction_id = _auction_id(request)
    seq: int = request.path_params["seq"]
    left_out = await svc.void_bid(principal, auction_id, seq, body.reason)
    view: dict[str, Any] = await svc.view(auction_id)
    return JSONResponse(view | {"voided_seqs": left_out})


@endpoint("Every bid attempt and its outcome (admin audit)", tags=("auctions", "admin"),
          auth=True, roles=("admin",), query={"after": "attempt id", "limit": "1 to 500"},
          errors=(401, 403, 404, 422))
async def attempts(svc: AuctionService, request: Request) -> Response:
    principal = await authenticate(request)
    after, limit = _page(request)
    items = await svc.attempts(principal, _auction_id(request),
                                               after=after, limit=limit)
    return JSONResponse({"items": items, "next_after": items[-1]["id"] if items else after})


@endpoint("Auctions, newest first: filter by show and state", tags=("auctions",),
          query={"show_id": "a show's id", "state": "scheduled, open, closed or cancelled "
                 "(comma-separated)", "cursor": "from next_cursor",
                 "limit": f"1 to {MAX_PAGE}"},
          errors=(422,))
async def listing(svc: AuctionService, request: Request) -> Response:
    show_id, states, after_id, limit = _list_query(request)
    items = await svc.list_views(show_id=show_id, states=states,
                                                 after_id=after_id, limit=limit + 1)
    more = len(items) > limit
    items = items[:limit]
    return JSONResponse({"items": items,
                         "next_cursor": items[-1]["id"] if more and items else None})


Handler = Callable[[AuctionService, Request], Awaitable[Response]]

# The routes: path, method, handler.
ROUTES: tuple[tuple[str, str, Handler], ...] = (
    ("/v1/auctions", "POST", create),
    ("/v1/auctions", "GET", listing),
    ("/v1/auctions/{auction_id}", "GET", show),
    ("/v1/auctions/{auction_id}/bids", "GET", bids),
    ("/v1/auctions/{auction_id}/bids", "POST", place),
    ("/v1/auctions/{auction_id}/cancel", "POST", cancel),
    ("/v1/auctions/{auction_id}/bids/{seq:int}/void", "POST", void),
    ("/v1/auctions/{auction_id}/attempts", "GET", attempts),
)


def build_routes(service_of: ServiceOf = _default_service) -> list[Route]:
    """Starlette routes for `ROUTES`, each handler given the service `service_of(request)`."""
    return [Route(path, _bind(handler, service_of), methods=[method])
            for path, method, handler in ROUTES]


def _bind(handler: Handler, service_of: ServiceOf) -> Callable[[Request], Awaitable[Response]]:
    @functools.wraps(handler)  # keeps the handler's name and its OpenAPI spec (`endpoint`)
    async def call(request: Request) -> Response:
        return await handler(service_of(request), request)

    return call
