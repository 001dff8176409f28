"""HTTP routes for accounts: /v1/auth/* and /v1/me."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import ClassVar

import asyncpg
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.accounts import store
from api.accounts.passwords import hash_password, verify_password
from api.accounts.revoke import announce
from api.accounts.rules import normalize_email, validate_registration
from api.accounts.schemas import (
    LoginBody,
    LogoutBody,
    RefreshBody,
    RegisterBody,
    TokenPair,
    UserView,
)
from core.auth import SELF_SERVICE_ROLES, Role
from core.context import Runtime, authenticate, runtime
from core.errors import (
    Conflict,
    FieldError,
    Forbidden,
    InvalidCredentials,
    NotFound,
    RateLimited,
    TokenInvalid,
    ValidationFailed,
)
from core.http import JSONResponse, endpoint, parse_json


class AccountSuspended(Forbidden):
    code = "account_suspended"
    titles: ClassVar[Mapping[str, str]] = {"en": "Account suspended", "ar": "الحساب موقوف"}
    details: ClassVar[Mapping[str, str]] = {
        "en": "This account is suspended.",
        "ar": "هذا الحساب موقوف.",
    }


class EmailAlreadyRegistered(Conflict):
    code = "email_taken"
    titles: ClassVar[Mapping[str, str]] = {
        "en": "Email already registered",
        "ar": "البريد الإلكتروني مسجّل مسبقًا",
    }
    details: ClassVar[Mapping[str, str]] = {
        "en": "An account with this email exists.",
        "ar": "يوجد حساب بهذا البريد الإلكتروني.",
    }


class RefreshTokenReused(TokenInvalid):
    code = "refresh_token_reused"
    titles: ClassVar[Mapping[str, str]] = {
        "en": "Refresh token reused",
        "ar": "أُعيد استخدام رمز التحديث",
    }
    details: ClassVar[Mapping[str, str]] = {
        "en": "This refresh token was already used; every session of its login was revoked.",
        "ar": "سبق استخدام رمز التحديث هذا؛ أُلغيت كل جلسات هذا الدخول.",
    }


class RegisterResult(TokenPair):
    user: UserView | None = None


def user_view(user: store.User) -> UserView:
    return UserView(
        id=str(user.id),
        email=user.email,
        display_name=user.display_name,
        role=user.role.value,
        created_at=user.created_at.isoformat().replace("+00:00", "Z"),
    )


async def _issue_pair(
    rt: Runtime,
    user: store.User,
    *,
    family_id: uuid.UUID | None = None,
    parent_id: uuid.UUID | None = None,
    conn: asyncpg.Connection | None = None,
) -> TokenPair:
    token, token_hash = store.new_refresh_token()
    family_id = family_id or uuid.uuid4()
    await store.insert_refresh(
        conn or rt.pool,
        user_id=user.id,
        token_hash=token_hash,
        ttl_s=rt.settings.refresh_token_ttl_s,
        family_id=family_id,
        parent_id=parent_id,
    )
    return TokenPair(
        # `sid`: revoking the family (reuse, logout) revokes this access token too
        access_token=rt.tokens.issue(user.id, user.role, session=str(family_id)),
        refresh_token=token,
        expires_in=rt.settings.access_token_ttl_s,
    )


@endpoint(
    "Register a buyer, seller or rider account and sign in",
    tags=("auth",),
    body=RegisterBody,
    responses={201: RegisterResult},
    errors=(400, 409, 413, 415, 422),
)
async def register(request: Request) -> Response:
    rt = runtime(request)
    s = rt.settings
    await rt.limiter.enforce(
        "register-address", request.client.host if request.client else "unknown",
        capacity=s.register_rate_per_address, window_s=s.register_rate_window_s,
        detail="Too many registrations from this address.",
    )
    body = await parse_json(request, RegisterBody)
    validate_registration(body, allowed_roles=frozenset(r.value for r in SELF_SERVICE_ROLES))
    try:
        user = await store.create_user(
            rt.pool,
            email=body.email,
            email_normalized=normalize_email(body.email),
            password_hash=await hash_password(body.password),
            display_name=body.display_name,
            role=Role(body.role),
        )
    except store.EmailTaken:
        raise EmailAlreadyRegistered() from None
    pair = await _issue_pair(rt, user)
    result = RegisterResult(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        expires_in=pair.expires_in,
        user=user_view(user),
    )
    return JSONResponse(result, status_code=201)


def _failure_buckets(rt: Runtime, address: str, account: str) -> list[tuple[str, str, int]]:
    """(limiter, subject, capacity) of the buckets a wrong password drains: the account from
    this address (small), and the whole account (a much higher ceiling, so others' wrong
    passwords from other addresses do not lock its owner out)."""
    s = rt.settings
    return [("login-failures", f"{account}|{address}", s.login_failures_per_address),
            ("login-account", account, s.login_rate_per_account)]


async def _check_login_limits(rt: Runtime, address: str, account: str) -> None:
    s = rt.settings
    await rt.limiter.enforce(
        "login-address", address, capacity=s.login_rate_per_address, window_s=s.login_rate_window_s
    )
    for limiter, subject, capacity in _failure_buckets(rt, address, account):
        left = await rt.limiter.take(limiter, subject, capacity=capacity,
                                     window_s=s.login_rate_window_s, cost=0)
        if not left.allowed:
            raise RateLimited(left.retry_after_s, "Too many failed logins for this account.")


@endpoint(
    "Sign in with email and password",
    tags=("auth",),
    body=LoginBody,
    responses={200: TokenPair},
    errors=(400, 401, 403, 413, 415, 422, 429),
)
async def login(request: Request) -> Response:
    """Every attempt drains a per-address bucket; a wrong password drains the account's
    bucket for this address and, much larger, the account's own. An empty bucket answers 429
    with Retry-After before the password is even checked. The address is the TCP peer's, or
    the client named by X-Forwarded-For only when the peer is one of TRUSTED_PROXIES."""
    rt = runtime(request)
    body = await parse_json(request, LoginBody)
    account = normalize_email(body.email)
    address = request.client.host if request.client else "unknown"
    await _check_login_limits(rt, address, account)
    user = await store.user_by_email(rt.pool, account)
    ok = await verify_password(user.password_hash if user else None, body.password)
    if user is None or not ok:
        for limiter, subject, capacity in _failure_buckets(rt, address, account):
            await rt.limiter.take(limiter, subject, capacity=capacity,
                                  window_s=rt.settings.login_rate_window_s)
        raise InvalidCredentials()
    if user.status != "active":
        raise AccountSuspended()
    return JSONResponse(await _issue_pair(rt, user))


@endpoint(
    "Exchange a refresh token for a new token pair (rotation)",
    tags=("auth",),
    body=RefreshBody,
    responses={200: TokenPair},
    errors=(400, 401, 413, 415, 422),
)
async def refresh(request: Request) -> Response:
    """Each refresh token works once. Presenting a used one revokes its whole family."""
    rt = runtime(request)
    body = await parse_json(request, RefreshBody)
    async with rt.pool.acquire() as conn, conn.transaction():
        rotation = await store.rotate_refresh(conn, store.digest(body.refresh_token))
        if rotation.outcome is store.RotateOutcome.ROTATED:
            assert rotation.user is not None
            return JSONResponse(
                await _issue_pair(
                    rt,
                    rotation.user,
                    family_id=rotation.family_id,
                    parent_id=rotation.token_id,
                    conn=conn,
                )
            )
    if rotation.outcome is store.RotateOutcome.REUSED:
        assert rotation.family_id is not None
        assert rotation.user_id is not None
        await revoke_session(request, rt, rotation.user_id, rotation.family_id)
        raise RefreshTokenReused()
    raise TokenInvalid("The refresh token is unknown, expired or revoked.")


@endpoint(
    "Sign out: revoke this access token and, if given, the refresh token's family",
    tags=("auth",),
    body=LogoutBody,
    body_required=False,
    responses={204: None},
    auth=True,
    errors=(401, 422),
)
async def logout(request: Request) -> Response:
    rt = runtime(request)
    principal = await authenticate(request)
    body = LogoutBody()
    if request.headers.get("content-length") not in (None, "0"):
        body = await parse_json(request, LogoutBody)
    if body.refresh_token is not None:
        family = await store.revoke_by_token(
            rt.pool, store.digest(body.refresh_token), principal.user_id
        )
        if family is None:
            raise ValidationFailed([FieldError("refresh_token", "not a token of this account")])
        await revoke_session(request, rt, principal.user_id, family)
    ttl = max(1, principal.expires_at - int(time.time()))
    await rt.redis.set(rt.revoked_key(principal.jti), b"1", ex=ttl)
    await announce(request, principal.user_id, jti=principal.jti)
    return Response(status_code=204)


async def revoke_session(
    request: Request, rt: Runtime, user_id: uuid.UUID, family: uuid.UUID
) -> None:
    """Revoke every access token issued from refresh-token family `family` (its `sid`), here
    and on live connections, for as long as one of them can still be unexpired."""
    sid = str(family)
    await rt.redis.set(rt.revoked_session_key(sid), b"1", ex=rt.settings.access_token_ttl_s)
    await announce(request, user_id, session=sid)


@endpoint(
    "The signed-in user's account",
    tags=("auth",),
    responses={200: UserView},
    auth=True,
    errors=(401,),
)
async def me(request: Request) -> Response:
    rt = runtime(request)
    principal = await authenticate(request)
    user = await store.user_by_id(rt.pool, principal.user_id)
    if user is None:
        raise NotFound()
    return JSONResponse(user_view(user))


routes = [
    Route("/v1/auth/register", register, methods=["POST"]),
    Route("/v1/auth/login", login, methods=["POST"]),
    Route("/v1/auth/refresh", refresh, methods=["POST"]),
    Route("/v1/auth/logout", logout, methods=["POST"]),
    Route("/v1/me", me, methods=["GET"]),
]
