"""SDP offers for WHIP and WHEP: what an offer must look like and which codec a session uses.
No I/O.

An offer is read just enough to refuse what the relay cannot serve *before* aiortc sees it
(aiortc raises bare ValueErrors or worse on odd input): its size, the media sections (at most
one audio and one video, nothing else), directions, ICE credentials, RTCP mux, and the codecs.
aiortc parses it again afterwards; any failure there is still a 400 (see `peers.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from streaming.errors import BadSdp, NoCommonCodec, UnsupportedOffer

Role = Literal["whip", "whep"]

# Codecs the relay forwards (and aiortc can packetize), by media kind.
VIDEO_CODECS = ("vp8", "h264")
AUDIO_CODECS = ("opus",)
# H.264 profiles aiortc negotiates (profile_idc + constraint flags of profile-level-id).
H264_PROFILES = {"42e0": "42e01f", "42c0": "42e01f", "4200": "42001f", "4240": "42001f"}


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
