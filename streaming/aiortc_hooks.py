"""Every use of aiortc's and aioice's internals, fenced in one module (checked on upgrades by
tests/streaming/test_aiortc_hooks.py, which lists each attribute relied on).

aiortc (pinned in pyproject.toml) decodes everything it receives and re-encodes for every
sender; a relay wants neither. Four hooks make it a packet relay:

1. `use_host_addresses`: aioice's `get_host_addresses` skips 127.0.0.1, so on a loopback-only
   machine a peer offers no candidate at all; WEBRTC_HOST_ADDRESSES replaces the list.
2. `bypass_decoder`: an ingest receiver hands each reassembled encoded frame (depayloaded by
   aiortc: VP8 partitions, H.264 Annex-B, Opus) to a callback instead of its decoder thread.
   aiortc's NACK, RTX, REMB and jitter buffer keep working.
3. `intercept_keyframe_requests`: a viewer's PLI/FIR sets a flag only aiortc's encoder reads;
   the relay needs it as a call.
4. `request_keyframe`: send a PLI to the publisher (the receiver's private `_send_rtcp_pli`).

Everything else the relay does goes through aiortc's public API (an `av.Packet` returned by a
track's `recv()` is only packetized by the sender: `RTCRtpSender._next_encoded_frame`).

The load generators' viewers (loadtests/streaming, loadtests/crowd) count RTP packets without
decoding them; the two hooks they use live here too, so one module holds every aiortc internal:

5. `tap_rtp`: a DTLS transport hands each decrypted RTP packet to a handler instead of its
   receivers (no jitter buffer, no decode, no per-receiver thread).
6. `replace_packet_handler`: one receiver hands its RTP packets to a handler (its NACKs,
   jitter buffer and decoder stop).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Iterable
from fractions import Fraction
from typing import Any

import aioice.ice
import aiortc.rtcrtpreceiver
import av
from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpparameters import RTCRtpCodecCapability
from aiortc.rtp import RtpPacket

log = logging.getLogger("souk.streaming")

# (object, attribute) pairs this module relies on; the upgrade test checks each exists.
RELIED_ON: tuple[tuple[object, str], ...] = (
    (aioice.ice, "get_host_addresses"),
    (aiortc.rtcrtpreceiver, "decoder_worker"),
    (RTCRtpReceiver, "_send_rtcp_pli"),
    (RTCRtpReceiver, "_handle_rtp_packet"),
    (RTCRtpSender, "_send_keyframe"),
    (RTCRtpSender, "_handle_rtcp_packet"),
    (RTCDtlsTransport, "_handle_rtp_data"),
    (RTCDtlsTransport, "_recv_next"),
)
# Name-mangled instance attribute of RTCRtpReceiver set in __init__ (checked on an instance).
DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"

FrameSink = Callable[[bytes, int], None]
RtpDataHandler = Callable[[bytes, int], Coroutine[Any, Any, None]]
RtpPacketHandler = Callable[[RtpPacket, int], Coroutine[Any, Any, None]]


def use_host_addresses(addresses: Iterable[str]) -> None:
    """Gather ICE host candidates on exactly `addresses` (127.0.0.1 allowed), process-wide.
    An empty list leaves aioice's default (every interface but loopback)."""
    chosen = list(addresses)
    if not chosen:
        return

    def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in chosen if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = host_addresses


class _Passthrough:
    """Stands in for a receiver's decoder queue (a `queue.Queue` read by `decoder_worker` in a
    thread). The receiver `put`s `(codec, JitterFrame)` on the event loop for each complete
    frame, and `None` when it stops; the worker thread `get`s: it gets None at once and exits
    (after putting None on the unused remote track), so no decoder runs."""

    def __init__(self, on_frame: FrameSink, on_end: Callable[[], None]) -> None:
        self._on_frame = on_frame
        self._on_end = on_end
        self._ended = False

    def get(self, *args: Any, **kwargs: Any) -> None:
        return None

    def put(self, task: Any, *args: Any, **kwargs: Any) -> None:
        if task is None:
            if not self._ended:
                self._ended = True
                self._on_end()
            return
        _codec, frame = task
        try:
            self._on_frame(frame.data, frame.timestamp)
        except Exception:  # a relay bug must not kill the receiver's RTP handling
            log.exception("relay failed on an ingest frame")


def bypass_decoder(receiver: RTCRtpReceiver, on_frame: FrameSink,
                   on_end: Callable[[], None]) -> None:
    """Deliver `receiver`'s reassembled encoded frames to `on_frame(data, timestamp)` (the
    timestamp in the codec's clock, starting at 0) instead of decoding them; `on_end()` once
    when the receiver stops. Call after setRemoteDescription and before the connection
    completes (aiortc starts the decoder thread in `receive()`, after DTLS)."""
    if not hasattr(receiver, DECODER_QUEUE):
        raise RuntimeError("aiortc changed: RTCRtpReceiver has no decoder queue to replace")
    setattr(receiver, DECODER_QUEUE, _Passthrough(on_frame, on_end))


def intercept_keyframe_requests(sender: RTCRtpSender, callback: Callable[[], None]) -> None:
    """Call `callback()` whenever the remote peer asks `sender` for a keyframe (PLI or FIR)."""
    sender._send_keyframe = callback  # type: ignore[method-assign]


async def request_keyframe(receiver: RTCRtpReceiver) -> None:
    """Send a PLI to the remote sender of every SSRC `receiver` heard in the last seconds
    (RTX SSRCs included: a peer ignores a PLI for a stream it does not send as media)."""
    for source in receiver.getSynchronizationSources():
        await receiver._send_rtcp_pli(source.source)


def encoded_packet(data: bytes, timestamp: int, clock_rate: int) -> av.Packet[Any]:
    """What a viewer track returns: aiortc's sender packetizes an `av.Packet` (no encode),
    reading `bytes(packet)`, `pts` and `time_base`."""
    packet = av.Packet(data)
    packet.pts = timestamp
    packet.time_base = Fraction(1, clock_rate)
    return packet


def codec_capability(kind: str, mime_type: str, profile: str | None) -> RTCRtpCodecCapability:
    """aiortc's own capability for a codec (to pass to `setCodecPreferences`)."""
    caps = RTCRtpSender.getCapabilities(kind)
    for cap in caps.codecs:
        if cap.mimeType.lower() != mime_type.lower():
            continue
        if profile is None or str(cap.parameters.get("profile-level-id", "")).lower() == profile:
            return cap
    raise LookupError(f"aiortc has no {mime_type} {profile or ''} capability")


def rtx_capability(kind: str) -> list[RTCRtpCodecCapability]:
    caps = RTCRtpSender.getCapabilities(kind)
    return [c for c in caps.codecs if c.mimeType.lower() == f"{kind}/rtx"]


def tap_rtp(transport: Any, handler: RtpDataHandler) -> None:
    """Send every decrypted RTP packet arriving on `transport` (an `RTCDtlsTransport`) to
    `handler(data, arrival_time_ms)` instead of its receivers: `_recv_next` awaits the
    instance's `_handle_rtp_data` with each one, after real ICE, DTLS and SRTP."""
    if not isinstance(transport, RTCDtlsTransport):
        raise TypeError(f"not an RTCDtlsTransport: {type(transport)!r}")
    setattr(transport, "_handle_rtp_data", handler)  # noqa: B010 (an instance attribute)


def replace_packet_handler(receiver: RTCRtpReceiver, handler: RtpPacketHandler) -> None:
    """Send each RTP packet of `receiver` to `handler(packet, arrival_time_ms)` (`packet` an
    aiortc `RtpPacket`: `.payload`, `.payload_type`, ...) instead of its jitter buffer."""
    setattr(receiver, "_handle_rtp_packet", handler)  # noqa: B010 (an instance attribute)
