"""HTTP routes for shows: create, list, get, start, end, chat restrictions, viewers."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import ClassVar, Literal

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.shows import store
from api.shows.errors import InvalidTransition
from api.shows.rules import ShowState, next_state
from api.shows.schemas import CreateShow, Restriction, ShowList, ShowView, Viewers
from core.auth import Principal, Role
from core.context import require, runtime
from core.db import transaction
from core.errors import Conflict, FieldError, Forbidden, NotFound, ValidationFailed
from core.http import JSONResponse, endpoint, parse_json
from core.ids import parse_uuid
from core.outbox import add_event
from realtime.presence import RedisPresence

MAX_LIST = 100


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def view(show: store.Show) -> ShowView:
    return ShowView(
        id=str(show.id), seller_id=str(show.seller_id), title=show.title, state=show.state.value,
        starts_at=_iso(show.starts_at), started_at=_iso(show.started_at),
        ended_at=_iso(show.ended_at), created_at=_iso(show.created_at) or "",
    )


def _id(request: Request, name: str = "show_id") -> uuid.UUID:
    value = parse_uuid(request.path_params[name])
    if value is None:
        raise NotFound()
    return value


async def _owned(request: Request, principal: Principal) -> store.Show:
    show = await store.get(runtime(request).pool, _id(request))
    if show is None:
        raise NotFound("No such show.")
    if show.seller_id != principal.user_id and not principal.is_admin:
        raise Forbidden("Only the show's seller or an admin may do this.")
    return show



class SellerNotRestrictable(Conflict):
    code = "seller_not_restrictable"
    titles: ClassVar[Mapping[str, str]] = {
        "en": "The seller cannot be restricted",
        "ar": "لا يمكن تقييد البائع",
    }
    details: ClassVar[Mapping[str, str]] = {
        "en": "A show's seller cannot be muted or banned in its chat.",
        "ar": "لا يمكن كتم بائع العرض أو حظره في دردشته.",
    }

@endpoint("Create a show (sellers)", tags=("shows",), body=CreateShow,
          responses={201: ShowView}, auth=True, roles=("seller",),
          errors=(400, 401, 403, 413, 415, 422))
async def create_show(request: Request) -> Response:
    principal = await require(request, Role.SELLER)
    body = await parse_json(request, CreateShow)
    if body.starts_at is not None and body.starts_at.tzinfo is None:
        raise ValidationFailed([FieldError("starts_at", "must include a time zone")])
    show = await store.create(runtime(request).pool, seller_id=principal.user_id,
                              title=body.title, starts_at=body.starts_at)
    return JSONResponse(view(show), status_code=201)


@endpoint("List shows: live ones first, then by start time (scheduled), newest first",
          tags=("shows",), responses={200: ShowList},
          errors=(422,), query={"state": "scheduled | live | ended, or a comma-separated list "
                                         "(live,scheduled: what buyers can watch now or soon)",
                                "seller_id": "only this seller's shows",
                                "limit": f"1-{MAX_LIST} (default 50)"})
async def list_shows(request: Request) -> Response:
    q = request.query_params
    raw_state = q.get("state")
    states = raw_state.split(",") if raw_state is not None else None
    if states is not None and not set(states) <= {s.value for s in ShowState}:
        raise ValidationFailed([FieldError(
            "state", "must be scheduled, live or ended, or several of them comma-separated")])
    seller = q.get("seller_id")
    seller_id = parse_uuid(seller) if seller is not None else None
    if seller is not None and seller_id is None:
        raise ValidationFailed([FieldError("seller_id", "must be a UUID")])
    try:
        limit = int(q.get("limit", "50"))
    except ValueError:
        limit = -1
    if not 1 <= limit <= MAX_LIST:
        raise ValidationFailed([FieldError("limit", f"must be between 1 and {MAX_LIST}")])
    shows = await store.listing(runtime(request).pool, states=states, seller_id=seller_id,
                                limit=limit)
    return JSONResponse(ShowList([view(s) for s in shows]))


@endpoint("Get a show", tags=("shows",), responses={200: ShowView}, errors=(404,))
async def get_show(request: Request) -> Response:
    show = await store.get(runtime(request).pool, _id(request))
    if show is None:
        raise NotFound("No such show.")
    return JSONResponse(view(show))


async def _transition(request: Request, action: Literal["start", "end"]) -> Response:
    principal = await require(request)
    show = await _owned(request, principal)
    target = next_state(show.state, action)
    async with transaction(runtime(request).pool) as conn:
        updated = await store.set_state(conn, show.id, target, show.state)
        if updated is None:
            raise InvalidTransition(params={"state": "changed", "action": action + "ed"})
        await add_event(conn, f"show.{target.value}",
                        {"type": "state", "show_id": str(show.id), "state": target.value},
                        channels=[f"show:{show.id}"])
    return JSONResponse(view(updated))


@endpoint("Start a show (its seller or an admin)", tags=("shows",), responses={200: ShowView},
          auth=True, errors=(401, 403, 404, 409))
async def start_show(request: Request) -> Response:
    return await _transition(request, "start")


@endpoint("End a show (its seller or an admin)", tags=("shows",), responses={200: ShowView},
          auth=True, errors=(401, 403, 404, 409))
async def end_show(request: Request) -> Response:
    return await _transition(request, "end")


@endpoint("Mute or ban a user in a show's chat (its seller or an admin)", tags=("shows",),
          body=Restriction, responses={204: None}, auth=True,
          errors=(400, 401, 403, 404, 409, 413, 415, 422))
async def restrict_user(request: Request) -> Response:
    principal = await require(request)
    show = await _owned(request, principal)
    user_id = _id(request, "user_id")
    body = await parse_json(request, Restriction)
    pool = runtime(request).pool
    if not await store.user_exists(pool, user_id):
        raise NotFound("No such user.")
    if user_id == show.seller_id:
        raise SellerNotRestrictable()
    await store.restrict(pool, show.id, user_id, body.kind, principal.user_id)
    return Response(status_code=204)


@endpoint("Lift a user's mute or ban in a show's chat", tags=("shows",), responses={204: None},
          auth=True, errors=(401, 403, 404))
async def unrestrict_user(request: Request) -> Response:
    principal = await require(request)
    show = await _owned(request, principal)
    if not await store.unrestrict(runtime(request).pool, show.id, _id(request, "user_id")):
        raise NotFound("That user has no restriction in this show.")
    return Response(status_code=204)


@endpoint("Viewer count and signed-in chat members of a show", tags=("shows",),
          responses={200: Viewers}, errors=(404,))
async def viewers(request: Request) -> Response:
    show_id = _id(request)
    if await store.get(runtime(request).pool, show_id) is None:
        raise NotFound("No such show.")
    presence: RedisPresence = request.state.presence
    count = await presence.count(f"show:{show_id}")
    chatters = await presence.who(f"show:{show_id}:chat")
    return JSONResponse(Viewers(count, chatters))


routes = [
    Route("/v1/shows", create_show, methods=["POST"]),
    Route("/v1/shows", list_shows, methods=["GET"]),
    Route("/v1/shows/{show_id}", get_show, methods=["GET"]),
    Route("/v1/shows/{show_id}/start", start_show, methods=["POST"]),
    Route("/v1/shows/{show_id}/end", end_show, methods=["POST"]),
    Route("/v1/shows/{show_id}/chat/restrictions/{user_id}", restrict_user, methods=["PUT"]),
    Route("/v1/shows/{show_id}/chat/restrictions/{user_id}", unrestrict_user,
          methods=["DELETE"]),
    Route("/v1/shows/{show_id}/viewers", viewers, methods=["GET"]),
]
