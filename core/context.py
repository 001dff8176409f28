"""The per-process runtime shared by every route, and the request-side auth guard.

`api.app` builds one `Runtime` in its lifespan and exposes it as `request.state.runtime` (and
`websocket.state.runtime`). Domain packages read it through `runtime(conn)`; they never import
`api`. Domain services (the hub, the auction service, tracking, live video) do not live here:
the lifespan puts them on the request state beside it (`request.state.hub`, `.auctions`, ...),
where each package's routes read them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import asyncpg
import redis.asyncio as aioredis
from starlette.requests import HTTPConnection

from core.auth import Principal, Role, TokenService, bearer_token
from core.authcache import RevocationVerdicts
from core.config import Settings
from core.errors import Forbidden, TokenInvalid, Unauthorized
from core.metrics import Metrics
from core.ratelimit import RateLimiter
from core.redis_client import REDIS_ERRORS, Keys

log = logging.getLogger("souk.auth")


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    pool: asyncpg.Pool
    redis: aioredis.Redis
    keys: Keys
    tokens: TokenService
    metrics: Metrics
    limiter: RateLimiter
    # "not revoked" answers kept for AUTH_REVOCATION_RECHECK_S while subscribed to the
    # revocation broadcast (core/authcache.py); off (window 0) unless the app sets it
    verdicts: RevocationVerdicts = field(default_factory=lambda: RevocationVerdicts(0))

    def revoked_key(self, jti: str) -> str:
        return self.keys.key("revoked-jti", jti)

    def suspended_key(self, user_id: object) -> str:
        """Present while a suspended user's access tokens may still be unexpired."""
        return self.keys.key("suspended-user", str(user_id))

    def revoked_session_key(self, session: str) -> str:
        """Present while access tokens of a revoked refresh-token family may be unexpired."""
        return self.keys.key("revoked-sid", session)

    def revocation_keys(self, principal: Principal) -> list[str]:
        """The keys any one of which revokes `principal`'s token."""
        keys = [self.revoked_key(principal.jti), self.suspended_key(principal.user_id)]
        if principal.session is not None:
            keys.append(self.revoked_session_key(principal.session))
        return keys


def runtime(conn: HTTPConnection) -> Runtime:
    rt: Runtime = conn.state.runtime
    return rt


async def authenticate(conn: HTTPConnection) -> Principal:
    """The verified caller of an HTTP request or websocket upgrade.

    Raises Unauthorized (no token), TokenExpired, or TokenInvalid (bad token or logged out)."""
    token = bearer_token(conn.headers.get("authorization"))
    if token is None:
        raise Unauthorized()
    rt = runtime(conn)
    principal = rt.tokens.verify(token)
    if await is_revoked(rt, principal):
        raise TokenInvalid("The token was revoked (logout or suspended account).")
    return principal


async def is_revoked(rt: Runtime, principal: Principal) -> bool:
    """Whether an access token was revoked by logout, its refresh-token family revoked, or its
    user suspended (one Redis round trip, or none when a "not revoked" answer is cached:
    `rt.verdicts`, core/authcache.py). Fails open if Redis does not answer: a revoked token
    then lives at most until its expiry."""
    verdicts = rt.verdicts
    if verdicts.is_known_good(principal):
        return False
    epoch = verdicts.begin()
    try:
        found = await rt.redis.exists(*rt.revocation_keys(principal))
    except REDIS_ERRORS as exc:
        log.warning("revocation check unavailable", extra={"error": repr(exc)})
        return False
    if not found:
        verdicts.not_revoked(principal, epoch)
    return bool(found)


async def revoked_among(rt: Runtime, principals: list[Principal]) -> list[bool]:
    """`is_revoked` for many principals in one pipelined round trip (the live websocket
    connections' periodic re-check). Raises Redis errors (the caller retries later)."""
    if not principals:
        return []
    async with rt.redis.pipeline(transaction=False) as pipe:
        for principal in principals:
            pipe.exists(*rt.revocation_keys(principal))
        found = await pipe.execute()
    return [bool(n) for n in found]


async def require(conn: HTTPConnection, *roles: Role) -> Principal:
    """`authenticate`, then refuse (Forbidden) callers whose role is not in `roles` (any role
    when none is given)."""
    principal = await authenticate(conn)
    if roles and principal.role not in roles:
        raise Forbidden()
    return principal
