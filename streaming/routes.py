"""WHIP (RFC 9725) and WHEP endpoints: `/v1/shows/{id}/whip` and `/v1/shows/{id}/whep`.

- `POST` an SDP offer (`Content-Type: application/sdp`) → `201 Created`, the SDP answer, an
  absolute `Location` of the session and an `ETag`. WHIP needs the show's seller's Bearer token;
  WHEP takes an optional one. A request reaching a process that does not hold the show answers
  `307` with `Location` on the process that does (the client repeats the POST there).
- `DELETE` the session URL ends the session (the URL is unguessable: it is the capability).
- `PATCH` the session URL answers `405`: the server's answer carries all its candidates at once
  and it learns the client's from its connectivity checks (peer-reflexive), so trickle ICE and
  ICE restarts are not needed; a client restarts by POSTing again.
- `OPTIONS` answers CORS preflights (any origin; Bearer tokens, not cookies).
"""

from __future__ import annotations

import re
import uuid

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.auth import bearer_token
from core.context import authenticate
from core.errors import MethodNotAllowed, NotFound, UnsupportedMediaType
from core.http import endpoint, read_body
from core.ids import parse_uuid
from streaming.errors import BadSdp
from streaming.records import Redirect
from streaming.sdp import content_type_ok
from streaming.service import StreamingService
from streaming.session import SESSION_ID_PATTERN

SDP = "application/sdp"
_SESSION_ID_RE = re.compile(SESSION_ID_PATTERN)
# The paths whose routes answer CORS themselves (any origin), so the API-wide allow-list
# leaves them alone (api/middleware.py `CorsExceptOwn`).
OWN_CORS_PATHS = re.compile(r"^/v1/shows/[^/]+/(whip|whep)(/[^/]+)?$")
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "Location, ETag, Link, Accept-Post, Retry-After",
}
PREFLIGHT = {
    **CORS,
    "Access-Control-Allow-Methods": "POST, DELETE, PATCH, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match",
    "Access-Control-Max-Age": "86400",
    "Accept-Post": SDP,
}


def _service(request: Request) -> StreamingService:
    service: StreamingService = request.state.streaming
    return service


def _show_id(request: Request) -> uuid.UUID:
    value = parse_uuid(request.path_params["show_id"])
    if value is None:
        raise NotFound("No such show.")
    return value


def base_url(request: Request) -> str:
    """This process's public base URL: STREAMING_PUBLIC_URL, else what the client used."""
    return _service(request).config.public_url or str(request.base_url).rstrip("/")


async def _offer(request: Request, service: StreamingService) -> str:
    if not content_type_ok(request.headers.get("content-type"), SDP):
        raise UnsupportedMediaType(params={"expected": f"Content-Type: {SDP}"})
    body = await read_body(request, limit=service.config.max_sdp_bytes)
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadSdp(params={"reason": "it is not UTF-8"}) from None


def _created(request: Request, role: str, show_id: uuid.UUID, session_id: str,
             answer: str) -> Response:
    location = f"{base_url(request)}/v1/shows/{show_id}/{role}/{session_id}"
    headers = {**CORS, "Location": location, "ETag": f'"{session_id}"'}
    return Response(answer, status_code=201, media_type=SDP, headers=headers)


def _redirect(request: Request, owner: str) -> Response:
    target = owner.rstrip("/") + request.url.path
    return Response(status_code=307, headers={**CORS, "Location": target})


@endpoint("Publish a show's video (WHIP, RFC 9725): SDP offer in, SDP answer out",
          tags=("streaming",), body=str, body_media_type=SDP,
          responses={201: None, 307: None}, auth=True, roles=("seller",),
          errors=(400, 401, 403, 404, 409, 413, 415, 422, 503))
async def whip(request: Request) -> Response:
    service = _service(request)
    show_id = _show_id(request)
    principal = await authenticate(request)
    offer = await _offer(request, service)
    try:
        session, answer = await service.publish(show_id, principal, offer, base_url(request))
    except Redirect as moved:
        return _redirect(request, moved.base_url)
    return _created(request, "whip", show_id, session.id, answer)


@endpoint("Watch a show's video (WHEP): SDP offer in, SDP answer out",
          tags=("streaming",), body=str, body_media_type=SDP,
          responses={201: None, 307: None},
          errors=(400, 401, 404, 409, 413, 415, 422, 503))
async def whep(request: Request) -> Response:
    service = _service(request)
    show_id = _show_id(request)
    if bearer_token(request.headers.get("authorization")) is not None:
        await authenticate(request)  # optional, but a token given must be valid
    offer = await _offer(request, service)
    try:
        session, answer = await service.watch(show_id, offer, base_url(request))
    except Redirect as moved:
        return _redirect(request, moved.base_url)
    return _created(request, "whep", show_id, session.id, answer)


async def _delete(request: Request, role: str) -> Response:
    service = _service(request)
    session = service.find(request.path_params["session_id"], _show_id(request), role)
    if session is None:
        raise NotFound("No such session.")
    await service.close_session(session, "deleted")
    return Response(status_code=200, headers=CORS)


@endpoint("End a WHIP session", tags=("streaming",), responses={200: None}, errors=(404,))
async def delete_whip(request: Request) -> Response:
    return await _delete(request, "whip")


@endpoint("End a WHEP session", tags=("streaming",), responses={200: None}, errors=(404,))
async def delete_whep(request: Request) -> Response:
    return await _delete(request, "whep")


@endpoint("Trickle ICE / ICE restart: not supported (405)", tags=("streaming",),
          responses={405: None})
async def patch(request: Request) -> Response:
    raise MethodNotAllowed(
        "This server answers with all its candidates and needs no trickled ones; "
        "to restart, POST a new offer.",
        headers={**CORS, "Allow": "DELETE, OPTIONS"},
    )


@endpoint("CORS preflight", tags=("streaming",), responses={204: None}, errors=(404,))
async def preflight(request: Request) -> Response:
    _show_id(request)  # a malformed id names nothing: 404, as the request itself would get
    session_id = request.path_params.get("session_id")
    if session_id is not None and not _SESSION_ID_RE.fullmatch(session_id):
        raise NotFound("No such session.")
    return Response(status_code=204, headers=PREFLIGHT)


def _routes() -> list[Route]:
    out: list[Route] = []
    for role, post, delete in (("whip", whip, delete_whip), ("whep", whep, delete_whep)):
        base = f"/v1/shows/{{show_id}}/{role}"
        out += [
            Route(base, post, methods=["POST"]),
            Route(base, preflight, methods=["OPTIONS"]),
            Route(base + "/{session_id}", delete, methods=["DELETE"]),
            Route(base + "/{session_id}", patch, methods=["PATCH"]),
            Route(base + "/{session_id}", preflight, methods=["OPTIONS"]),
        ]
    return out


routes = _routes()
