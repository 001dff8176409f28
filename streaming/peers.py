"""aiortc peer connections for the two roles, through aiortc's public API plus the fenced hooks:
an ingest connection (WHIP: receive only, decoder bypassed) and a viewer connection (WHEP: send
only, tracks that return encoded packets, the publisher's codec forced).

Any failure of aiortc on an offer that `session.plan_offer` let through becomes `BadSdp` (400),
never a 500, and the half-built connection is closed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpTransceiver,
    RTCSessionDescription,
)

from streaming.aiortc_hooks import (
    FrameSink,
    bypass_decoder,
    codec_capability,
    intercept_keyframe_requests,
    rtx_capability,
)
from streaming.errors import BadSdp
from streaming.relay import ViewerTrack
from streaming.sdp import Codec, OfferPlan

log = logging.getLogger("souk.streaming")


def new_connection() -> RTCPeerConnection:
    # No STUN/TURN: a server gathers host candidates only (WEBRTC_HOST_ADDRESSES); without
    # `iceServers=[]` aiortc would wait on a public STUN server.
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


def _prefer(transceiver: RTCRtpTransceiver, codec: Codec) -> None:
    cap = codec_capability(codec.kind, codec.mime_type, codec.profile)
    extra = rtx_capability(codec.kind) if codec.kind == "video" else []
    transceiver.setCodecPreferences([cap, *extra])


async def _answer(pc: RTCPeerConnection, offer_sdp: str) -> str:
    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
    except Exception as exc:  # aiortc raises ValueError, OperationError, KeyError...
        log.info("offer refused by aiortc", extra={"error": repr(exc)})
        raise BadSdp(params={"reason": str(exc) or type(exc).__name__}) from None
    return str(pc.localDescription.sdp)


async def accept_publisher(
    offer_sdp: str, plan: OfferPlan, sinks: dict[str, tuple[FrameSink, Callable[[], None]]],
) -> tuple[RTCPeerConnection, str, RTCRtpReceiver]:
    """A receive-only connection for a WHIP offer. Each kind's encoded frames go to
    `sinks[kind] = (on_frame, on_end)`. Returns the connection, the SDP answer and the video
    receiver (to send keyframe requests to). Raises BadSdp."""
    pc = new_connection()
    try:
        receivers: dict[str, RTCRtpReceiver] = {}
        for codec in (plan.video, plan.audio):
            if codec is None:
                continue
            transceiver = pc.addTransceiver(codec.kind, direction="recvonly")
            _prefer(transceiver, codec)
            receivers[codec.kind] = transceiver.receiver
        answer = await _answer(pc, offer_sdp)
        for kind, receiver in receivers.items():
            on_frame, on_end = sinks[kind]
            bypass_decoder(receiver, on_frame, on_end)
        return pc, answer, receivers["video"]
    except BaseException:
        await pc.close()
        raise


async def accept_viewer(
    offer_sdp: str, plan: OfferPlan, tracks: dict[str, ViewerTrack],
) -> tuple[RTCPeerConnection, str]:
    """A send-only connection for a WHEP offer, sending `tracks` (by kind) with the publisher's
    codecs. Raises BadSdp."""
    pc = new_connection()
    try:
        for kind, codec in (("video", plan.video), ("audio", plan.audio)):
            track = tracks.get(kind)
            if codec is None or track is None:
                continue
            transceiver = pc.addTransceiver(track, direction="sendonly")
            _prefer(transceiver, codec)
            intercept_keyframe_requests(transceiver.sender, track.request_keyframe)
        answer = await _answer(pc, offer_sdp)
        return pc, answer
    except BaseException:
        await pc.close()
        raise
