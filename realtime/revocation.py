"""Live connections obey their token: expiry, logout, a revoked sign-in and suspension.

A websocket authenticates once, but its token keeps mattering while it is open:

- **Expiry.** Each authenticated connection gets a timer at its token's `exp`; when it fires
  (or a command arrives after `exp`) the connection is closed with **4005 token expired**: the
  client refreshes its access token over REST and reconnects (resubscribing with `since` loses
  nothing). We close rather than ask for a `refresh` op (Centrifugo's way) to keep one
  authentication path: the upgrade header or the first `auth` command.
- **Revocation.** Logout (the token's `jti`), a refresh-token family revoked for reuse or logout
  (the token's `sid`) and a suspension (the user) are announced on the server-internal channel
  `sys:revocations` through the hub's own bus (Redis pub/sub, like every publication); every
  process closes the matching connections at once with **4501** (terminal: do not reconnect
  with that token).
- **A missed announcement** (pub/sub is at-most-once, Redis may restart) is caught by a re-check
  of every live connection's token against the revocation keys every `recheck_s`.

`Guard` is what the endpoint calls (a no-op twin for pure tests); `Revocations` is the real one,
built in `api/realtime_wiring.py`.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from core.auth import Principal
from core.tasks import stop
from realtime.broker import Message
from realtime.hub import CLOSE_BAD_TOKEN, Client, Hub

log = logging.getLogger("souk.realtime.revocation")

CHANNEL = "sys:revocations"
CLOSE_TOKEN_EXPIRED = 4005
CLOSE_REVOKED = CLOSE_BAD_TOKEN
RECHECK_BATCH = 500

# principals -> whether each one's token is revoked (raises when the store does not answer)
RevokedAmong = Callable[[list[Principal]], Awaitable[list[bool]]]


class Guard:
    """What the endpoint tells about authenticated connections. This base only enforces
    expiry on each command; `Revocations` adds timers and revocation."""

    def track(self, client: Client, principal: Principal) -> None:
        return None

    def forget(self, client: Client) -> None:
        return None

    def still_valid(self, client: Client, principal: Principal, now: float) -> bool:
        """False (and the connection closed with 4005) once the token has expired."""
        if principal.expires_at <= now:
            client.close(CLOSE_TOKEN_EXPIRED, "token expired")
            return False
        return True


def matches(principal: Principal, notice: dict[str, Any]) -> bool:
    """Whether a revocation notice (`{"user", "jti"?, "sid"?}`) covers `principal`: a notice
    with neither `jti` nor `sid` covers every token of the user (suspension)."""
    if notice.get("user") != str(principal.user_id):
        return False
    jti, sid = notice.get("jti"), notice.get("sid")
    if jti is None and sid is None:
        return True
    return (jti is not None and jti == principal.jti) or (
        sid is not None and sid == principal.session
    )


class Revocations(Guard):
    """Closes this process's connections whose token was revoked anywhere, or expired."""

    def __init__(self, hub: Hub, revoked_among: RevokedAmong, *, recheck_s: float,
                 on_notice: Callable[[uuid.UUID], None] | None = None) -> None:
        self._hub = hub
        self._on_notice = on_notice  # told the user of every notice heard (the auth caches)
        self._revoked_among = revoked_among
        self._recheck_s = recheck_s
        self._principals: dict[Client, Principal] = {}
        self._timers: dict[Client, asyncio.TimerHandle] = {}
        self._by_user: dict[uuid.UUID, set[Client]] = {}
        self._task: asyncio.Task[None] | None = None

    # -- the endpoint's hooks ----------------------------------------------------------

    def track(self, client: Client, principal: Principal) -> None:
        self.forget(client)
        self._principals[client] = principal
        self._by_user.setdefault(principal.user_id, set()).add(client)
        delay = max(0.0, principal.expires_at - time.time())
        self._timers[client] = asyncio.get_running_loop().call_later(
            delay, self._expire, client
        )

    def forget(self, client: Client) -> None:
        principal = self._principals.pop(client, None)
        timer = self._timers.pop(client, None)
        if timer is not None:
            timer.cancel()
        if principal is not None:
            clients = self._by_user.get(principal.user_id)
            if clients is not None:
                clients.discard(client)
                if not clients:
                    del self._by_user[principal.user_id]

    def _expire(self, client: Client) -> None:
        self._timers.pop(client, None)
        client.close(CLOSE_TOKEN_EXPIRED, "token expired")

    # -- announcing and applying -------------------------------------------------------

    async def announce(self, user_id: uuid.UUID, *, jti: str | None = None,
                       session: str | None = None) -> None:
        """Tell every process to close `user_id`'s connections holding token `jti`, or of
        sign-in `session`, or all of them (neither given). Raises bus errors: the revocation
        keys the caller wrote first still cut them at the next re-check."""
        await self._hub.publish(CHANNEL, {"user": str(user_id), "jti": jti, "sid": session})

    def on_message(self, msg: Message) -> None:
        """Hub tap for `sys:revocations`."""
        try:
            notice = orjson.loads(msg.payload)["data"]
            user = uuid.UUID(notice["user"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("malformed revocation notice ignored")
            return
        if self._on_notice is not None:
            self._on_notice(user)
        for client in list(self._by_user.get(user, ())):
            principal = self._principals.get(client)
            if principal is not None and matches(principal, notice):
                self._revoke(client)

    def _revoke(self, client: Client) -> None:
        self.forget(client)
        client.close(CLOSE_REVOKED, "token revoked")

    async def recheck(self) -> int:
        """Check every tracked connection's token against the revocation keys; close the
        revoked ones. Returns how many were closed."""
        tracked = list(self._principals.items())
        closed = 0
        for start in range(0, len(tracked), RECHECK_BATCH):
            batch = tracked[start:start + RECHECK_BATCH]
            flags = await self._revoked_among([p for _, p in batch])
            for (client, principal), revoked in zip(batch, flags, strict=True):
                if revoked and self._principals.get(client) is principal:
                    self._revoke(client)
                    closed += 1
        return closed

    # -- lifetime ------------------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe to the revocation channel and start the periodic re-check."""
        await self._hub.tap(CHANNEL, self.on_message)
        self._task = asyncio.create_task(self._recheck_forever(), name="ws-revocation-recheck")

    async def _recheck_forever(self) -> None:
        while True:
            await asyncio.sleep(self._recheck_s)
            try:
                closed = await self.recheck()
            except Exception as exc:  # the store is down: keep going, try again later
                log.warning("revocation re-check failed", extra={"error": repr(exc)})
            else:
                if closed:
                    log.info("revoked connections closed by re-check", extra={"closed": closed})

    async def close(self) -> None:
        if self._task is not None:
            await stop(self._task)
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
