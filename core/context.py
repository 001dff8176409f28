"""The per-process runtime shared by every route, and the request-side auth guard.

`api.app` builds one `Runtime` in its lifespan and exposes it as `request.state.runtime` (and
`websocket.state.runtime`). Domain packages read it through `runtime(conn)`; they never import
`api`. Domain services (the hub, the auction service) are injected into each package's route
factory instead of living here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import RedisError
from starlette.requests import HTTPConnection

from core.auth import Principal, Role, TokenService, bearer_token
from core.config import Settings
from core.errors import Forbidden, TokenInvalid, Unauthorized
from core.metrics import Metrics
from core.ratelimit import RateLimiter
from core.redis_client import Keys

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

    def revoked_key(self, jti: str) -> str:
        return self.keys.key("revoked-jti", jti)


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
    if await is_revoked(rt, principal.jti):
        raise TokenInvalid("The token was revoked by logout.")
    return principal


async def is_revoked(rt: Runtime, jti: str) -> bool:
    """Whether an access token was revoked by logout. Fails open if Redis does not answer: a
    revoked token then lives at most until its expiry."""
    try:
        return bool(await rt.redis.exists(rt.revoked_key(jti)))
    except (RedisError, OSError) as exc:
        log.warning("revocation check unavailable", extra={"error": repr(exc)})
        return False


async def require(conn: HTTPConnection, *roles: Role) -> Principal:
    """`authenticate`, then refuse (Forbidden) callers whose role is not in `roles` (any role
    when none is given)."""
    principal = await authenticate(conn)
    if roles and principal.role not in roles:
        raise Forbidden()
    return principal
