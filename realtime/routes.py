"""HTTP routes of the hub: the operator publish path (also what the fan-out benchmark drives).

`POST /v1/admin/channels/{channel}/publications` (admin) `{"data": any, "key"?: str}` publishes
through Redis exactly like any server-side producer: `201 {"epoch", "offset"}` for durable
publications, `202 {}` for latest-value ones (with `key`).
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.auth import Role
from core.context import require
from core.errors import FieldError, NotFound, ValidationFailed
from core.http import JSONResponse, Schema, endpoint, parse_json
from realtime.channels import BadChannel, parse_channel
from realtime.hub import Hub

_KEY_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class PublishBody(Schema):
    data: Any
    key: str | None = None


class Published(msgspec.Struct):
    epoch: str | None = None
    offset: int | None = None


def hub_of(request: Request) -> Hub:
    hub: Hub = request.state.hub
    return hub


@endpoint(
    "Publish on a real-time channel (admins; goes through Redis like every publication)",
    tags=("realtime",), body=PublishBody, responses={201: Published, 202: Published},
    auth=True, roles=("admin",), errors=(400, 401, 403, 404, 413, 415, 422, 503),
)
async def publish(request: Request) -> Response:
    await require(request, Role.ADMIN)
    try:
        channel = parse_channel(request.path_params["channel"])
    except BadChannel:
        raise NotFound("No such channel.") from None
    body = await parse_json(request, PublishBody)
    if body.key is not None and not _KEY_RE.match(body.key):
        raise ValidationFailed([FieldError("key", "1-64 of A-Z a-z 0-9 _ . : -")])
    position = await hub_of(request).publish(channel.name, body.data, key=body.key)
    if position is None:
        return JSONResponse(Published(), status_code=202)
    return JSONResponse(Published(position.epoch, position.offset), status_code=201)


routes = [Route("/v1/admin/channels/{channel}/publications", publish, methods=["POST"])]
