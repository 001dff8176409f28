"""The records of the live-video service: its configuration, what it needs from shows (the
hooks api injects), and the state it keeps per session and per show."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCPeerConnection, RTCRtpReceiver

from core.auth import Principal
from streaming.relay import Fanout, ViewerTrack
from streaming.sdp import Codec
from streaming.session import KeyframeThrottle, Presence


@dataclass(frozen=True)
class StreamConfig:
    grace_s: float = 30.0
    max_viewers_per_show: int = 500
    max_viewers: int = 1000
    max_publishers: int = 20
    max_sdp_bytes: int = 32_768
    connect_timeout_s: float = 15.0
    media_timeout_s: float = 10.0
    keyframe_interval_s: float = 0.5
    viewer_queue: int = 512
    max_pending_handshakes: int = 16  # viewer joins answered but not yet connected
    lease_s: float = 10.0
    public_url: str = ""  # STREAMING_PUBLIC_URL; empty: the URL a request came in on


@dataclass(frozen=True)
class ShowHooks:
    """What the composition root (api) provides: show records live there."""

    # Raises NotFound, NotTheSeller or ShowEnded when `principal` may not publish the show.
    authorize_publisher: Callable[[uuid.UUID, Principal], Awaitable[None]]
    show_exists: Callable[[uuid.UUID], Awaitable[bool]]
    went_live: Callable[[uuid.UUID], Awaitable[None]]  # idempotent
    ended: Callable[[uuid.UUID], Awaitable[None]]  # idempotent
    # Which of these shows have ended in the record (their seller or an operator ended them).
    ended_among: Callable[[list[uuid.UUID]], Awaitable[set[uuid.UUID]]]
    # A latest-value publication on show:{id} (video state and viewer count).
    announce: Callable[[uuid.UUID, dict[str, Any]], Awaitable[None]]


class Redirect(Exception):  # a control-flow signal for routes, not a client error
    def __init__(self, base_url: str) -> None:
        super().__init__(base_url)
        self.base_url = base_url


@dataclass(eq=False)
class Session:
    id: str
    role: str  # "whip" | "whep"
    show_id: uuid.UUID
    pc: RTCPeerConnection
    created: float
    connected: bool = False
    closed: bool = False
    tracks: list[ViewerTrack] = field(default_factory=list)
    receiver: RTCRtpReceiver | None = None
    handshaking: bool = False  # a viewer holding one of the process's handshake slots


@dataclass(eq=False)
class ShowRelay:
    show_id: uuid.UUID
    base_url: str
    codecs: dict[str, Codec]
    fanouts: dict[str, Fanout]
    throttle: KeyframeThrottle
    presence: Presence = field(default_factory=Presence)
    publisher: Session | None = None
    viewers: set[Session] = field(default_factory=set)
    last_media: float = 0.0
    live_announced: bool = False
    announced: tuple[str, int] | None = None
