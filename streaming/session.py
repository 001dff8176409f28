"""Pure signalling rules for WHIP and WHEP: what an SDP offer must look like, which codec a
session uses, the errors clients see, and the keyframe-request throttle. No I/O; time is an
argument.

An offer is read just enough to refuse what the relay cannot serve *before* aiortc sees it
(aiortc raises bare ValueErrors or worse on odd input): its size, the media sections (at most
one audio and one video, nothing else), directions, ICE credentials, RTCP mux, and the codecs.
aiortc parses it again afterwards; any failure there is still a 400 (see `peers.py`).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from core.errors import AppError, Conflict, Forbidden, ServiceUnavailable

# A session id is `secrets.token_urlsafe(18)` (service.py): 24 URL-safe characters.
SESSION_ID_PATTERN = r"^[A-Za-z0-9_-]{24}$"

Role = Literal["whip", "whep"]

# Codecs the relay forwards (and aiortc can packetize), by media kind.
VIDEO_CODECS = ("vp8", "h264")
AUDIO_CODECS = ("opus",)
# H.264 profiles aiortc negotiates (profile_idc + constraint flags of profile-level-id).
H264_PROFILES = {"42e0": "42e01f", "42c0": "42e01f", "4200": "42001f", "4240": "42001f"}


class BadSdp(AppError):
    code = "bad_sdp"
    status = 400
    titles: ClassVar[Mapping[str, str]] = {"en": "Malformed SDP offer", "ar": "عرض SDP غير سليم"}
    details: ClassVar[Mapping[str, str]] = {
        "en": "The SDP offer could not be read: {reason}.",
        "ar": "تعذرت قراءة عرض SDP: {reason}.",
    }


class UnsupportedOffer(AppError):
    code = "unsupported_offer"
    status = 422
    titles: ClassVar[Mapping[str, str]] = {
        "en": "Offer cannot be served",
        "ar": "لا يمكن خدمة العرض",
    }
    details: ClassVar[Mapping[str, str]] = {
        "en": "The server cannot serve this offer: {reason}.",
        "ar": "لا يستطيع الخادم خدمة هذا العرض: {reason}.",
    }


class NoCommonCodec(UnsupportedOffer):
    code = "no_common_codec"
    titles: ClassVar[Mapping[str, str]] = {"en": "No common codec", "ar": "لا يوجد ترميز مشترك"}


class ShowNotLive(Conflict):
    code = "show_not_live"
    titles: ClassVar[Mapping[str, str]] = {"en": "Show not live", "ar": "العرض ليس مباشرًا"}
    details: ClassVar[Mapping[str, str]] = {
        "en": "This show has no live video now.",
        "ar": "لا يوجد بث مباشر لهذا العرض الآن.",
    }


class ShowEnded(Conflict):
    code = "show_ended"
    titles: ClassVar[Mapping[str, str]] = {"en": "Show ended", "ar": "انتهى العرض"}
    details: ClassVar[Mapping[str, str]] = {
        "en": "This show has ended; create a new one to go live again.",
        "ar": "انتهى هذا العرض؛ أنشئ عرضًا جديدًا للبث مجددًا.",
    }


class NotTheSeller(Forbidden):
    code = "not_show_seller"
    titles: ClassVar[Mapping[str, str]] = {"en": "Not the show's seller", "ar": "لست بائع العرض"}
    details: ClassVar[Mapping[str, str]] = {
        "en": "Only the show's seller may publish its video.",
        "ar": "يمكن لبائع العرض فقط بث الفيديو الخاص به.",
    }


class TooManySessions(ServiceUnavailable):
    code = "too_many_sessions"
    titles: ClassVar[Mapping[str, str]] = {"en": "Too many sessions", "ar": "جلسات كثيرة جدًا"}
    details: ClassVar[Mapping[str, str]] = {
        "en": "The {what} limit ({limit}) is reached; retry later.",
        "ar": "تم بلوغ حد {what} ({limit})؛ أعد المحاولة لاحقًا.",
    }


class HandshakesBusy(ServiceUnavailable):
    code = "viewer_joins_busy"
    titles: ClassVar[Mapping[str, str]] = {
        "en": "Too many viewers joining",
        "ar": "عدد كبير من المشاهدين ينضمون الآن",
    }
    details: ClassVar[Mapping[str, str]] = {
        "en": "{pending} viewers are joining this server right now (limit {limit}); "
              "retry in a moment.",
        "ar": "ينضم {pending} مشاهدًا إلى هذا الخادم الآن (الحد {limit})؛ أعد المحاولة بعد قليل.",
    }


class CodecChanged(Conflict):
    code = "codec_changed"
    titles: ClassVar[Mapping[str, str]] = {"en": "Codec changed", "ar": "تغير الترميز"}
    details: ClassVar[Mapping[str, str]] = {
        "en": "A publisher resuming a show must send the codec it started with ({codec}).",
        "ar": "يجب أن يرسل الناشر الذي يستأنف العرض الترميز نفسه ({codec}).",
    }


@dataclass(frozen=True, slots=True)
class Codec:
    """One negotiated codec: `name` lower-case (`vp8`, `h264`, `opus`); for H.264 `profile` is
    the profile-level-id aiortc negotiates (`42e01f` or `42001f`)."""

    kind: str
    name: str
    clock_rate: int
    profile: str | None = None

    @property
    def mime_type(self) -> str:
        names = {"vp8": "VP8", "h264": "H264", "opus": "opus"}
        return f"{self.kind}/{names[self.name]}"

    @property
    def label(self) -> str:
        return self.name if self.profile is None else f"{self.name} {self.profile}"


@dataclass(slots=True)
class Media:
    kind: str
    direction: str = "sendrecv"
    rtcp_mux: bool = False
    ice: bool = False
    rtpmap: dict[int, tuple[str, int]] = field(default_factory=dict)
    fmtp: dict[int, dict[str, str]] = field(default_factory=dict)
    payload_types: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class OfferPlan:
    """What the server will answer: one codec per media kind present (video first)."""

    video: Codec
    audio: Codec | None


def _fmtp(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in text.split(";"):
        key, sep, value = item.strip().partition("=")
        if sep:
            out[key.strip().lower()] = value.strip()
    return out


def _attribute(m: Media, name: str, rest: str) -> None:
    if name in ("sendrecv", "sendonly", "recvonly", "inactive"):
        m.direction = name
    elif name == "rtcp-mux":
        m.rtcp_mux = True
    elif name in ("ice-ufrag", "ice-pwd"):
        m.ice = True
    elif name == "rtpmap":
        pt_text, _, encoding = rest.partition(" ")
        enc = encoding.strip().split("/")
        if pt_text.isdigit() and len(enc) >= 2 and enc[1].isdigit():
            m.rtpmap[int(pt_text)] = (enc[0].lower(), int(enc[1]))
    elif name == "fmtp":
        pt_text, _, params = rest.partition(" ")
        if pt_text.isdigit():
            m.fmtp[int(pt_text)] = _fmtp(params)


def _media_line(value: str) -> Media:
    parts = value.split()
    if len(parts) < 4:
        raise BadSdp(params={"reason": "an m= line is incomplete"})
    return Media(kind=parts[0], payload_types=[int(p) for p in parts[3:] if p.isdigit()])


def parse_media(sdp: str) -> list[Media]:
    """The media sections of an offer. Raises BadSdp."""
    if not sdp.startswith("v=0"):
        raise BadSdp(params={"reason": "it does not start with v=0"})
    session = Media(kind="session")  # session-level attributes (ICE credentials may be here)
    media: list[Media] = []
    for raw in sdp.splitlines():
        line = raw.strip()
        if not line:
            continue
        if len(line) < 2 or line[1] != "=":
            raise BadSdp(params={"reason": f"line {line[:40]!r} is not type=value"})
        if line[0] == "m":
            media.append(_media_line(line[2:]))
        elif line[0] == "a":
            name, _, rest = line[2:].partition(":")
            _attribute(media[-1] if media else session, name, rest)
    for m in media:
        m.ice = m.ice or session.ice
    return media


def _h264_profile(params: Mapping[str, str]) -> str | None:
    if params.get("packetization-mode", "0") != "1":
        return None
    level_id = params.get("profile-level-id", "42e01f").lower()
    if len(level_id) != 6:
        return None
    return H264_PROFILES.get(level_id[:4])


def offered_codecs(m: Media) -> list[Codec]:
    """The codecs of a media section the relay could use, in the offer's order."""
    allowed = VIDEO_CODECS if m.kind == "video" else AUDIO_CODECS
    out: list[Codec] = []
    for pt in m.payload_types:
        name, rate = m.rtpmap.get(pt, ("", 0))
        if name not in allowed:
            continue
        profile = None
        if name == "h264":
            profile = _h264_profile(m.fmtp.get(pt, {}))
            if profile is None:
                continue
        codec = Codec(m.kind, name, rate, profile)
        if codec not in out:
            out.append(codec)
    return out


def _check_sections(media: list[Media], role: Role) -> None:
    if not media:
        raise BadSdp(params={"reason": "it has no media section"})
    kinds = [m.kind for m in media]
    for kind in set(kinds):
        if kind not in ("audio", "video"):
            raise UnsupportedOffer(params={"reason": f"{kind} media sections are not served"})
        if kinds.count(kind) > 1:
            raise UnsupportedOffer(params={"reason": f"more than one {kind} section"})
    if "video" not in kinds:
        raise UnsupportedOffer(params={"reason": "the offer has no video"})
    wanted = ("sendonly", "sendrecv") if role == "whip" else ("recvonly", "sendrecv")
    for m in media:
        if not m.ice:
            raise BadSdp(params={"reason": "ICE credentials (ice-ufrag, ice-pwd) are missing"})
        if not m.rtcp_mux:
            raise UnsupportedOffer(params={"reason": "RTCP multiplexing (rtcp-mux) is required"})
        if m.direction not in wanted:
            raise UnsupportedOffer(params={
                "reason": f"{m.kind} is {m.direction}; {role.upper()} needs {' or '.join(wanted)}"
            })


def _choose(m: Media, publisher: Mapping[str, Codec] | None) -> Codec | None:
    codecs = offered_codecs(m)
    if publisher is not None:
        sent = publisher.get(m.kind)
        if sent is None:
            return None  # the show has no such track: the viewer gets an inactive section
        if sent not in codecs:
            raise NoCommonCodec(params={"reason": f"the show sends {m.kind} as {sent.label}"})
        return sent
    if not codecs:
        supported = VIDEO_CODECS if m.kind == "video" else AUDIO_CODECS
        hint = " (H.264: packetization-mode=1, baseline profiles)" if m.kind == "video" else ""
        raise NoCommonCodec(params={
            "reason": f"{m.kind} must be one of {', '.join(supported)}{hint}"
        })
    return codecs[0]


def plan_offer(sdp: str, *, role: Role, max_bytes: int,
               publisher: Mapping[str, Codec] | None = None) -> OfferPlan:
    """Check an offer and choose its codecs.

    WHIP (`role="whip"`): the publisher's first usable codec per kind, in its order; media must
    be sendonly or sendrecv. WHEP: the codec the show's publisher sends (`publisher`), which the
    viewer must offer; media must be recvonly or sendrecv. Audio is optional either way; for
    WHEP an offer without audio simply gets no audio.

    Raises BadSdp (400), UnsupportedOffer or NoCommonCodec (422).
    """
    if len(sdp.encode()) > max_bytes:
        raise UnsupportedOffer(params={"reason": f"the offer is larger than {max_bytes} bytes"})
    media = parse_media(sdp)
    _check_sections(media, role)
    chosen = {m.kind: c for m in media if (c := _choose(m, publisher)) is not None}
    return OfferPlan(video=chosen["video"], audio=chosen.get("audio"))


def same_codecs(old: Mapping[str, Codec], plan: OfferPlan) -> Codec | None:
    """On a publisher's reconnect: None when the new plan sends what viewers already negotiated,
    else the codec that changed (the reconnect is refused with CodecChanged)."""
    for kind, codec in (("video", plan.video), ("audio", plan.audio)):
        if kind in old and codec is not None and old[kind] != codec:
            return old[kind]
    return None


def content_type_ok(value: str | None, expected: str) -> bool:
    return value is not None and value.split(";")[0].strip().lower() == expected


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
