"""Fails loudly when an aiortc/aioice/av upgrade removes or changes what
streaming/aiortc_hooks.py relies on (ARCHITECTURE: fence a library's internals, test them).
The server's relay and the load generators' counting viewers both go through that module."""

from __future__ import annotations

import asyncio
import inspect
from fractions import Fraction
from importlib.metadata import version

import aioice.ice
import aiortc.rtcrtpreceiver
import pytest
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc.codecs import get_encoder
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RTCP_PSFB_PLI, RtcpPsfbPacket, RtpPacket

from streaming import aiortc_hooks
from streaming.aiortc_hooks import RELIED_ON, codec_capability, encoded_packet


def test_pinned_versions() -> None:
    """The hooks were written against these; upgrade deliberately, then re-run this file."""
    assert version("aiortc") == "1.16.0"
    assert version("aioice") == "0.13.0"
    assert version("av") == "18.1.0"


@pytest.mark.parametrize(("owner", "name"), RELIED_ON, ids=lambda x: getattr(x, "__name__", x))
def test_attribute_exists(owner: object, name: str) -> None:
    assert hasattr(owner, name), f"{owner!r} lost {name}"


def test_signatures() -> None:
    assert list(inspect.signature(aioice.ice.get_host_addresses).parameters) == [
        "use_ipv4", "use_ipv6"]
    assert list(inspect.signature(aiortc.rtcrtpreceiver.decoder_worker).parameters) == [
        "loop", "input_q", "output_q", "decode_error"]
    assert list(inspect.signature(RTCRtpReceiver._send_rtcp_pli).parameters) == [
        "self", "media_ssrc"]
    assert list(inspect.signature(RTCRtpSender._send_keyframe).parameters) == ["self"]


def test_receiver_feeds_its_decoder_queue_as_the_bypass_expects() -> None:
    """The receiver puts `(codec, JitterFrame)` on `__decoder_queue`, `None` to stop, checks the
    decoder thread is set, and the worker exits on a `None` from `get()`."""
    handle = inspect.getsource(RTCRtpReceiver._handle_rtp_packet)
    assert "self.__decoder_queue.put((codec, encoded_frame))" in handle
    assert "encoded_frame is not None and self.__decoder_thread" in handle
    assert "self.__timestamp_mapper.map(" in handle
    stop = inspect.getsource(RTCRtpReceiver)
    assert "self.__decoder_queue.put(None)" in stop
    assert "self.__decoder_queue: queue.Queue = queue.Queue()" in stop
    worker = inspect.getsource(aiortc.rtcrtpreceiver.decoder_worker)
    assert "task = input_q.get()" in worker and "if task is None:" in worker
    assert aiortc_hooks.DECODER_QUEUE == "_RTCRtpReceiver__decoder_queue"


async def test_sender_keyframe_requests_can_be_intercepted() -> None:
    class Transport:
        state = "new"
        _stats_id = "t"

    sender = RTCRtpSender("video", Transport())  # type: ignore[arg-type]
    calls: list[int] = []
    aiortc_hooks.intercept_keyframe_requests(sender, lambda: calls.append(1))
    await sender._handle_rtcp_packet(RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=1, media_ssrc=2))
    assert calls == [1]


def test_sender_packs_av_packets_without_encoding() -> None:
    source = inspect.getsource(RTCRtpSender._next_encoded_frame)
    assert "self.__encoder.pack(data)" in source and "isinstance(data, Frame)" in source
    for mime, rate, data in (("video/VP8", 90000, b"\x10" * 3000),
                             ("video/H264", 90000, b"\x00\x00\x00\x01\x65" + b"\x01" * 3000),
                             ("audio/opus", 48000, b"\x01" * 100)):
        codec = RTCRtpCodecParameters(mimeType=mime, clockRate=rate, payloadType=96,
                                      channels=2 if mime.startswith("audio") else None)
        payloads, timestamp = get_encoder(codec).pack(encoded_packet(data, 4500, rate))
        assert payloads and timestamp == 4500, mime
    assert encoded_packet(b"x", 1, 48000).time_base == Fraction(1, 48000)


def test_capabilities_for_forced_codecs() -> None:
    assert codec_capability("video", "video/VP8", None).mimeType == "video/VP8"
    for profile in ("42e01f", "42001f"):
        cap = codec_capability("video", "video/H264", profile)
        assert cap.parameters["profile-level-id"] == profile
    assert codec_capability("audio", "audio/opus", None).clockRate == 48000
    with pytest.raises(LookupError):
        codec_capability("video", "video/H264", "640c1f")


def test_host_addresses_replace_aioice_list() -> None:
    original = aioice.ice.get_host_addresses
    try:
        aiortc_hooks.use_host_addresses(["127.0.0.1", "::1"])
        assert aioice.ice.get_host_addresses(True, False) == ["127.0.0.1"]
        assert aioice.ice.get_host_addresses(True, True) == ["127.0.0.1", "::1"]
        aiortc_hooks.use_host_addresses([])
        assert aioice.ice.get_host_addresses(True, True) == ["127.0.0.1", "::1"]
    finally:
        aioice.ice.get_host_addresses = original


def test_rtp_tap_hooks_where_dtls_hands_over_decrypted_packets() -> None:
    """`tap_rtp` replaces the instance's `_handle_rtp_data`, which `_recv_next` awaits with each
    packet after SRTP."""
    assert list(inspect.signature(RTCDtlsTransport._handle_rtp_data).parameters) == [
        "self", "data", "arrival_time_ms"]
    assert inspect.iscoroutinefunction(RTCDtlsTransport._handle_rtp_data)
    assert "await self._handle_rtp_data(data, arrival_time_ms=arrival_time_ms)" in (
        inspect.getsource(RTCDtlsTransport._recv_next))
    assert "self._rx_srtp" in inspect.getsource(RTCDtlsTransport._recv_next)
    with pytest.raises(TypeError):
        aiortc_hooks.tap_rtp(object(), lambda data, ms: asyncio.sleep(0))


async def test_a_receiver_packet_handler_can_be_replaced() -> None:
    params = list(inspect.signature(RTCRtpReceiver._handle_rtp_packet).parameters)
    assert params == ["self", "packet", "arrival_time_ms"]
    assert inspect.iscoroutinefunction(RTCRtpReceiver._handle_rtp_packet)
    pc = RTCPeerConnection()
    try:
        receiver = pc.addTransceiver("video", direction="recvonly").receiver
        seen: list[tuple[bytes, int]] = []

        async def handle(packet: RtpPacket, arrival_time_ms: int) -> None:
            seen.append((packet.payload, arrival_time_ms))

        aiortc_hooks.replace_packet_handler(receiver, handle)
        await receiver._handle_rtp_packet(RtpPacket(payload=b"ab"), arrival_time_ms=7)
        assert seen == [(b"ab", 7)]
    finally:
        await pc.close()
