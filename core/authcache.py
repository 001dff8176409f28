"""Per-process caches that take token verification and the revocation check off the hot path.

Every authenticated request verified its JWT (PyJWT parses the token twice and checks the
signature: ~0.1-0.2 ms of CPU) and asked Redis whether it was revoked (one round trip).
A client sends the same token on every request until it expires, so:

- `VerifiedTokens` keeps the claims of tokens that verified, keyed by the exact token text, in a
  bounded LRU; an entry is used only while `time.time() < exp` (an expired token goes through
  the full verification again, which raises `TokenExpired`). Only tokens that verified are
  kept: a malformed or forged token always costs the full check.
- `RevocationVerdicts` keeps "not revoked" answers from Redis for `window_s` (setting
  `AUTH_REVOCATION_RECHECK_S`, 0 turns it off), and **only while the process is subscribed to
  the revocation broadcast** (`sys:revocations`, realtime/revocation.py): a revocation heard
  there drops the user's cached verdicts at once, and so does the revoking request in its own
  process, before it answers. A process that is not subscribed (bus down, or no hub) asks
  Redis on every request, as before. A notice missed on the bus (pub/sub is at-most-once) can
  leave a revoked token accepted for at most `window_s` in that process. "Revoked" answers are
  never cached (they stay refused; an unsuspended user is accepted again at once).
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # core.auth builds a VerifiedTokens in every TokenService
    from core.auth import Principal

DEFAULT_MAX_ENTRIES = 10_000


class VerifiedTokens:
    """Bounded LRU: token text -> the principal it verified to, while unexpired."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES, *,
                 clock: Callable[[], float] = time.time) -> None:
        if max_entries < 0:
            raise ValueError("max_entries must be >= 0")
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, Principal] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token: str) -> Principal | None:
        """The cached principal of `token`, or None (never seen, evicted, or expired)."""
        principal = self._entries.get(token)
        if principal is None:
            return None
        if principal.expires_at <= self._clock():  # PyJWT refuses exp <= now as expired
            del self._entries[token]
            return None
        self._entries.move_to_end(token)
        return principal

    def put(self, token: str, principal: Principal) -> None:
        if self.max_entries == 0:
            return
        self._entries[token] = principal
        self._entries.move_to_end(token)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)


# The identity of the live subscription to the revocation broadcast, or None while the process
# is not subscribed. A different identity (the bus reconnected) invalidates every verdict.
Subscription = Callable[[], object | None]


def _unsubscribed() -> object | None:
    return None


@dataclass(slots=True)
class _Verdict:
    user_id: uuid.UUID
    deadline: float
    subscription: object


class RevocationVerdicts:
    """"Not revoked" answers per token (`jti`), for `window_s`, while subscribed to the
    revocation broadcast. Bounded (oldest dropped first)."""

    def __init__(self, window_s: float, max_entries: int = DEFAULT_MAX_ENTRIES, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, _Verdict] = OrderedDict()
        self._by_user: dict[uuid.UUID, set[str]] = {}
        self._epoch = 0  # bumped by every drop: an answer read before it is not stored
        self.subscription: Subscription = _unsubscribed

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def enabled(self) -> bool:
        return self.window_s > 0 and self.max_entries > 0

    def subscribed(self, subscription: Subscription) -> None:
        """Cache only while `subscription()` is not None (the wiring passes the bus's view of
        the `sys:revocations` subscription); drops everything cached so far."""
        self.subscription = subscription
        self.clear()

    def unsubscribed(self) -> None:
        self.subscribed(_unsubscribed)

    def begin(self) -> int:
        """Call before asking Redis; pass the result to `not_revoked`."""
        return self._epoch

    def is_known_good(self, principal: Principal) -> bool:
        """True if `principal`'s token was found not revoked within the window, under the
        current subscription, and no revocation of its user was heard since."""
        if not self._entries:
            return False
        verdict = self._entries.get(principal.jti)
        if verdict is None:
            return False
        subscription = self.subscription()
        if (subscription is None or verdict.subscription is not subscription
                or verdict.deadline <= self._clock() or verdict.user_id != principal.user_id):
            self._remove(principal.jti)
            if subscription is None:
                self.clear()
            return False
        return True

    def not_revoked(self, principal: Principal, epoch: int) -> None:
        """Remember that Redis said `principal`'s token is not revoked (asked at `epoch`)."""
        if not self.enabled or epoch != self._epoch:
            return
        subscription = self.subscription()
        if subscription is None:
            return
        self._remove(principal.jti)
        self._entries[principal.jti] = _Verdict(
            principal.user_id, self._clock() + self.window_s, subscription)
        self._by_user.setdefault(principal.user_id, set()).add(principal.jti)
        while len(self._entries) > self.max_entries:
            jti, _ = next(iter(self._entries.items()))
            self._remove(jti)

    def forget_user(self, user_id: uuid.UUID) -> None:
        """A revocation concerning `user_id` (a token, a sign-in or the whole account): ask
        Redis again for every token of the user."""
        self._epoch += 1
        for jti in self._by_user.pop(user_id, ()):
            self._entries.pop(jti, None)

    def clear(self) -> None:
        self._epoch += 1
        self._entries.clear()
        self._by_user.clear()

    def _remove(self, jti: str) -> None:
        verdict = self._entries.pop(jti, None)
        if verdict is None:
            return
        jtis = self._by_user.get(verdict.user_id)
        if jtis is not None:
            jtis.discard(jti)
            if not jtis:
                del self._by_user[verdict.user_id]
