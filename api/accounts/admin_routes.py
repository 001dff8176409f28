"""Admin account operations: search users, suspend and reactivate."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Annotated, ClassVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.accounts import store
from api.accounts.revoke import announce
from api.accounts.routes import user_view
from api.accounts.schemas import UserView
from core.auth import Role
from core.context import require, runtime
from core.errors import Conflict, FieldError, NotFound, ValidationFailed
from core.http import JSONResponse, Schema, endpoint, parse_json
from core.ids import parse_uuid

MAX_PAGE = 100


class UserPage(msgspec.Struct):
    items: list[UserView]
    next_cursor: str | None


class StatusBody(Schema):
    reason: Annotated[str, msgspec.Meta(min_length=3, max_length=500)]


def _page_params(request: Request) -> tuple[int, str | None, str | None, str | None]:
    q = request.query_params
    errors: list[FieldError] = []
    limit = 50
    if "limit" in q:
        if not q["limit"].isdigit() or not 1 <= int(q["limit"]) <= MAX_PAGE:
            errors.append(FieldError("limit", f"must be an integer from 1 to {MAX_PAGE}"))
        else:
            limit = int(q["limit"])
    role = q.get("role")
    if role is not None and role not in {r.value for r in Role}:
        errors.append(FieldError("role", "unknown role"))
    text = q.get("q")
    if text is not None and len(text) > 100:
        errors.append(FieldError("q", "at most 100 characters"))
    cursor = q.get("cursor")
    if cursor is not None and parse_uuid(cursor) is None:
        errors.append(FieldError("cursor", "malformed cursor"))
    if errors:
        raise ValidationFailed(errors)
    return limit, role, text, cursor


@endpoint(
    "Search users (admin)",
    tags=("admin",),
    responses={200: UserPage},
    auth=True,
    roles=("admin",),
    errors=(401, 403, 422),
    query={
        "q": "email or name contains",
        "role": "filter by role",
        "cursor": "from next_cursor",
        "limit": f"page size, 1-{MAX_PAGE}",
    },
)
async def search_users(request: Request) -> Response:
    await require(request, Role.ADMIN)
    limit, role, text, cursor = _page_params(request)
    rows = await runtime(request).pool.fetch(
        """SELECT * FROM users
           WHERE ($1::text IS NULL OR role = $1)
             AND ($2::text IS NULL OR email_normalized LIKE '%' || lower($2) || '%'
                  OR lower(display_name) LIKE '%' || lower($2) || '%')
             AND ($3::uuid IS NULL OR id > $3)
           ORDER BY id LIMIT $4""",
        role,
        text.replace("%", r"\%").replace("_", r"\_") if text else None,
        uuid.UUID(cursor) if cursor else None,
        limit + 1,
    )
    users = [store._user(r) for r in rows[:limit]]
    next_cursor = str(users[-1].id) if len(rows) > limit else None
    return JSONResponse(UserPage([user_view(u) for u in users], next_cursor))



class CannotChangeOwnStatus(Conflict):
    code = "own_account"
    titles: ClassVar[Mapping[str, str]] = {"en": "Your own account", "ar": "حسابك الخاص"}
    details: ClassVar[Mapping[str, str]] = {
        "en": "An admin cannot suspend or reactivate their own account.",
        "ar": "لا يمكن للمسؤول إيقاف حسابه أو إعادة تفعيله.",
    }


async def _set_status(request: Request, status: str) -> Response:
    admin = await require(request, Role.ADMIN)
    user_id = parse_uuid(request.path_params["user_id"])
    body = await parse_json(request, StatusBody)
    if user_id is None:
        raise NotFound()
    if user_id == admin.user_id:
        raise CannotChangeOwnStatus()
    rt = runtime(request)
    async with rt.pool.acquire() as conn, conn.transaction():
        found = await conn.fetchval(
            "UPDATE users SET status = $2, updated_at = now() WHERE id = $1 RETURNING id",
            user_id,
            status,
        )
        if found is None:
            raise NotFound()
        if status == "suspended":
            await conn.execute(
                """UPDATE refresh_tokens SET revoked_at = now(), revoked_reason = $2
                   WHERE user_id = $1 AND revoked_at IS NULL""",
                user_id,
                f"suspended: {body.reason}",
            )
    # Live access tokens die too: the guard checks this key (kept as long as a token lives).
    if status == "suspended":
        await rt.redis.set(rt.suspended_key(user_id), b"1", ex=rt.settings.access_token_ttl_s)
        await announce(request, user_id)  # open websockets of the user close on every process
    else:
        await rt.redis.delete(rt.suspended_key(user_id))
    return Response(status_code=204)


@endpoint(
    "Suspend a user (admin): revokes their refresh tokens; logins are refused",
    tags=("admin",),
    body=StatusBody,
    responses={204: None},
    auth=True,
    roles=("admin",),
    errors=(401, 403, 404, 409, 422),
)
async def suspend_user(request: Request) -> Response:
    return await _set_status(request, "suspended")


@endpoint(
    "Reactivate a suspended user (admin)",
    tags=("admin",),
    body=StatusBody,
    responses={204: None},
    auth=True,
    roles=("admin",),
    errors=(401, 403, 404, 409, 422),
)
async def reactivate_user(request: Request) -> Response:
    return await _set_status(request, "active")


routes = [
    Route("/v1/admin/users", search_users, methods=["GET"]),
    Route("/v1/admin/users/{user_id}/suspend", suspend_user, methods=["POST"]),
    Route("/v1/admin/users/{user_id}/reactivate", reactivate_user, methods=["POST"]),
]
