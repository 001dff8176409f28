"""Pure signalling rules for WHIP and WHEP: the show life cycle seen by the relay, where a
viewer goes, the session limits and the keyframe-request throttle. No I/O; time is an argument.

The offer rules are in `sdp.py` and the errors clients see in `errors.py`; their names are
importable from here too.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from streaming.errors import (
    BadSdp,
    CodecChanged,
    HandshakesBusy,
    NoCommonCodec,
    NotTheSeller,
    ShowEnded,
    ShowNotLive,
    TooManySessions,
    UnsupportedOffer,
)
from streaming.sdp import (
    AUDIO_CODECS,
    H264_PROFILES,
    VIDEO_CODECS,
    Codec,
    Media,
    OfferPlan,
    Role,
    content_type_ok,
    offered_codecs,
    parse_media,
    plan_offer,
    same_codecs,
)

__all__ = [
    "AUDIO_CODECS",
    "H264_PROFILES",
    "HANDSHAKE_RETRY_S",
    "SESSION_ID_PATTERN",
    "VIDEO_CODECS",
    "BadSdp",
    "Codec",
    "CodecChanged",
    "HandshakesBusy",
    "KeyframeThrottle",
    "Media",
    "NoCommonCodec",
    "NotTheSeller",
    "OfferPlan",
    "Phase",
    "Presence",
    "Role",
    "Route",
    "ShowEnded",
    "ShowNotLive",
    "TooManySessions",
    "UnsupportedOffer",
    "check_capacity",
    "check_handshakes",
    "content_type_ok",
    "offered_codecs",
    "parse_media",
    "plan_offer",
    "route_viewer",
    "same_codecs",
]

# A session id is `secrets.token_urlsafe(18)` (service.py): 24 URL-safe characters.
SESSION_ID_PATTERN = r"^[A-Za-z0-9_-]{24}$"


# --- show life cycle seen by the relay -----------------------------------------------------


class Phase(enum.Enum):
    LIVE = "live"  # a publisher is connected
    RECONNECTING = "reconnecting"  # the publisher is gone, inside the grace period
    ENDED = "ended"


@dataclass(slots=True)
class Presence:
    """A show's publisher presence in this process. `gone_at` is set while no publisher is
    connected; the show ends once it has been gone for the grace period."""

    phase: Phase = Phase.LIVE
    gone_at: float | None = None

    def publisher_connected(self) -> None:
        if self.phase is not Phase.ENDED:
            self.phase, self.gone_at = Phase.LIVE, None

    def publisher_gone(self, now: float) -> None:
        if self.phase is Phase.LIVE:
            self.phase, self.gone_at = Phase.RECONNECTING, now

    def end_due(self, now: float, grace_s: float) -> bool:
        """Whether the grace has run out (the caller then ends the show)."""
        return (self.phase is Phase.RECONNECTING and self.gone_at is not None
                and now - self.gone_at >= grace_s)

    def end(self) -> None:
        self.phase = Phase.ENDED


class Route(enum.Enum):
    LOCAL = "local"
    REDIRECT = "redirect"
    NOT_LIVE = "not_live"


def route_viewer(*, local: bool, owner_url: str | None, my_url: str) -> Route:
    """Where a WHEP request goes: this process holds the show's relay → LOCAL; another live
    process holds its lease → REDIRECT (307 to `owner_url`); nobody → NOT_LIVE (409)."""
    if local:
        return Route.LOCAL
    if owner_url and owner_url.rstrip("/") != my_url.rstrip("/"):
        return Route.REDIRECT
    return Route.NOT_LIVE


def check_capacity(*, show_viewers: int, process_viewers: int, per_show: int,
                   per_process: int) -> None:
    """Raises TooManySessions when one more viewer would pass a limit."""
    if show_viewers >= per_show:
        raise TooManySessions(params={"what": "viewers per show", "limit": per_show},
                              headers={"Retry-After": "10"})
    if process_viewers >= per_process:
        raise TooManySessions(params={"what": "viewers per process", "limit": per_process},
                              headers={"Retry-After": "5"})


HANDSHAKE_RETRY_S = (1, 3)  # Retry-After range for a refused join (spread: no retry wave)


def check_handshakes(*, pending: int, limit: int, spread: float) -> None:
    """Admit one more viewer handshake (answer, ICE, DTLS) or raise HandshakesBusy (503).

    Joins in flight are capped per process so a join storm cannot starve the sessions already
    up (the publisher's consent checks and media first). `spread` in [0, 1) picks the
    Retry-After inside HANDSHAKE_RETRY_S so refused viewers do not come back all at once."""
    if pending < limit:
        return
    low, high = HANDSHAKE_RETRY_S
    retry = low + min(high - low, int(max(0.0, spread) * (high - low + 1)))
    raise HandshakesBusy(params={"pending": pending, "limit": limit},
                         headers={"Retry-After": str(retry)})


@dataclass(slots=True)
class KeyframeThrottle:
    """At most one upstream keyframe request per `interval_s`; a request inside the interval is
    remembered and becomes due when the interval ends, so none is lost (LiveKit's pli_throttle
    without dropping)."""

    interval_s: float
    last: float | None = None
    pending: bool = False

    def request(self, now: float) -> bool:
        """True: send one now. False: it is pending (call `due(now)` later)."""
        if self.last is None or now - self.last >= self.interval_s:
            self.last, self.pending = now, False
            return True
        self.pending = True
        return False

    def due(self, now: float) -> bool:
        """True when a pending request should be sent now."""
        if self.pending and self.last is not None and now - self.last >= self.interval_s:
            self.last, self.pending = now, False
            return True
        return False

    def wait_s(self, now: float) -> float:
        """Seconds until a pending request is due (0 when none is pending)."""
        if not self.pending or self.last is None:
            return 0.0
        return max(0.0, self.interval_s - (now - self.last))
