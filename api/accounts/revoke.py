"""Announcing revocations to live websocket connections on every process.

The Redis revocation keys (`core.context.Runtime.revocation_keys`) are written first by the
callers: they refuse the tokens on every later request and catch a live connection at its next
re-check even if this announcement is lost. The announcement closes those connections at once.
"""

from __future__ import annotations

import logging
import uuid

from starlette.requests import HTTPConnection

from core.redis_client import REDIS_ERRORS

_BUS_ERRORS: tuple[type[Exception], ...] = (*REDIS_ERRORS, TimeoutError)

log = logging.getLogger("souk.auth")


async def announce(conn: HTTPConnection, user_id: uuid.UUID, *, jti: str | None = None,
                   session: str | None = None) -> None:
    """Close `user_id`'s live connections holding token `jti`, or of sign-in `session`, or all
    of them (neither given). Never raises for a bus failure (the re-check covers it).

    This process's cached "not revoked" verdicts of the user are dropped first, so the
    revoking request's own process refuses the token at once, before the answer."""
    rt = getattr(conn.state, "runtime", None)
    if rt is not None:
        rt.verdicts.forget_user(user_id)
    revocations = getattr(conn.state, "revocations", None)
    if revocations is None:
        return
    try:
        await revocations.announce(user_id, jti=jti, session=session)
    except _BUS_ERRORS as exc:
        log.warning("revocation announcement failed", extra={"error": repr(exc)})
