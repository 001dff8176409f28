"""The WHEP viewer load generator: RTP reading (pure), the aiortc tap, and a real run."""

from __future__ import annotations

import asyncio
import os
import struct

import httpx
import pytest

from loadtests.streaming import load
from loadtests.streaming.rtp import h264_keyframe, keyframe, parse_header, vp8_keyframe
from loadtests.streaming.viewers import (
    MAX_RETRY_AFTER_S,
    Counter,
    ViewerResult,
    retry_after_s,
    video_payload_types,
)
from tests.conftest import TIMING_FACTOR
from tests.streaming.peer import running_peer


def rtp(seq: int, ts: int, payload: bytes, *, marker: bool = False, pt: int = 96,
        csrc: int = 0, extension: bytes | None = None, ssrc: int = 1234) -> bytes:
    first = 0x80 | csrc | (0x10 if extension is not None else 0)
    data = struct.pack("!BBHII", first, (0x80 if marker else 0) | pt, seq, ts, ssrc)
    data += b"\x00\x00\x00\x01" * csrc
    if extension is not None:
        data += struct.pack("!HH", 0xBEDE, len(extension) // 4) + extension
    return data + payload


def test_header_skips_csrcs_and_extensions() -> None:
    header = parse_header(rtp(7, 90, b"PAY", marker=True, csrc=2, extension=b"\x10\xff\x00\x00"))
    assert header is not None
    assert (header.marker, header.payload_type, header.sequence, header.timestamp) == (
        True, 96, 7, 90)
    assert header.payload_offset == 12 + 8 + 8
    assert parse_header(b"\x00" * 12) is None and parse_header(b"\x80") is None


def test_vp8_keyframe_bit_behind_the_descriptor() -> None:
    assert vp8_keyframe(bytes([0x10, 0x00])) is True  # S=1, PID=0, P=0
    assert vp8_keyframe(bytes([0x10, 0x01])) is False  # P=1: inter frame
    # X with a 15-bit picture id, then the payload header
    assert vp8_keyframe(bytes([0x90, 0x80, 0x81, 0x23, 0x00])) is True
    assert vp8_keyframe(bytes([0x90, 0x80, 0x81, 0x23, 0x01])) is False
    assert vp8_keyframe(bytes([0x00, 0x00])) is None  # continuation


def test_h264_keyframe_in_single_stap_a_and_fu_a() -> None:
    assert h264_keyframe(bytes([0x65])) is True  # IDR
    assert h264_keyframe(bytes([0x41])) is False  # non-IDR slice
    stap = bytes([0x18]) + struct.pack("!H", 2) + bytes([0x67, 0]) + struct.pack("!H", 1) + b"\x68"
    assert h264_keyframe(stap) is True
    assert h264_keyframe(bytes([0x7C, 0x85])) is True  # FU-A start of an IDR
    assert h264_keyframe(bytes([0x7C, 0x05])) is None  # FU-A middle
    assert keyframe("opus", b"\x00") is None


def test_counter_counts_frames_packets_gaps_inside_the_window() -> None:
    result = ViewerResult(index=0, sampled=False)
    counter = Counter(result, {96: "vp8"}, started=100.0, window=(101.0, 102.0))
    counter.count(rtp(1, 0, bytes([0x10, 0x01, 0]), marker=True), 100.05)  # delta frame first
    counter.count(rtp(2, 3000, bytes([0x10, 0x00, 0])), 100.2)
    counter.count(rtp(3, 3000, bytes([0x00, 0x00, 0]), marker=True), 101.5)
    counter.count(rtp(6, 6000, bytes([0x10, 0x01, 0]), marker=True), 101.6)  # 2 lost
    counter.count(rtp(1, 0, b"opus", pt=111, ssrc=99), 101.7)
    counter.count(rtp(7, 9000, bytes([0x10, 0x01, 0]), marker=True), 102.5)  # after the window
    assert result.first_frame_key is False and result.ttff_ms == 50.0
    assert (result.frames, result.packets, result.lost) == (2, 3, 2)


def test_payload_types_from_an_answer() -> None:
    sdp = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
           "m=video 9 UDP/TLS/RTP/SAVPF 97 98\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n"
           "a=rtpmap:97 VP8/90000\r\na=rtpmap:98 rtx/90000\r\na=fmtp:98 apt=97\r\n")
    assert video_payload_types(sdp) == {97: "vp8"}


def test_summary_and_sampling_are_pure() -> None:
    viewers = [
        {"status": 201, "frames": 300, "ttff_ms": 100.0, "latencies_ms": [40.0, 60.0],
         "sampled": True, "first_frame_key": None, "error": None, "packets": 600,
         "bytes": 600_000, "lost": 0},
        {"status": 201, "frames": 290, "ttff_ms": 300.0, "latencies_ms": [], "sampled": False,
         "first_frame_key": True, "error": None, "packets": 580, "bytes": 580_000, "lost": 1},
        {"status": 503, "frames": 0, "ttff_ms": None, "latencies_ms": [], "sampled": False,
         "first_frame_key": None, "error": "503: full", "packets": 0, "bytes": 0, "lost": 0,
         "busy_retries": 2},
    ]
    summary = load.summarize(viewers, 10.0)
    assert summary["playing"] == 2 and summary["statuses"] == {"201": 2, "503": 1}
    assert summary["busy_retries"] == 2
    assert (summary["fps_min"], summary["fps_avg"]) == (29.0, 29.5)
    assert summary["ttff_p95_ms"] == 300.0 and summary["latency_p95_ms"] == 60.0
    assert summary["first_frame_key"] == "1/2" and summary["packets_per_s"] == 116
    assert load.sampled_indices(100, 4) == [0, 25, 50, 75]
    assert load.sampled_indices(3, 5) == [0, 1, 2]
    assert load.sampled_indices(10, 0) == []


def test_a_viewer_retries_only_a_503_with_a_bounded_retry_after() -> None:
    def response(status: int, retry: str | None) -> httpx.Response:
        return httpx.Response(status, headers={"Retry-After": retry} if retry else {})

    assert retry_after_s(response(503, "2")) == 2.0
    assert retry_after_s(response(503, None)) is None
    assert retry_after_s(response(503, "soon")) is None
    assert retry_after_s(response(503, str(int(MAX_RETRY_AFTER_S) + 1))) is None
    assert retry_after_s(response(409, "2")) is None
    assert retry_after_s(response(201, None)) is None


def test_only_loopback_targets_and_bounded_runs() -> None:
    with pytest.raises(SystemExit):
        load.parse_args(["http://10.0.0.1:8000/whep"])
    with pytest.raises(SystemExit):
        load.parse_args(["http://127.0.0.1:8000/whep", "--viewers", "5000"])
    with pytest.raises(SystemExit):
        load.parse_args(["http://127.0.0.1:8000/whep", "--seconds", "3600"])


@pytest.mark.slow
async def test_counting_and_sampling_viewers_against_an_aiortc_peer() -> None:
    async with running_peer() as peer:
        args = load.parse_args([f"{peer.url}/whep", "--viewers", "3", "--processes", "2",
                                "--sample", "1", "--warmup", str(1.5 * TIMING_FACTOR),
                                "--seconds", "2", "--server-pid", str(os.getpid())])
        summary = await asyncio.to_thread(load.run, args)
    assert summary["workers_ok"] == "2/2", summary
    assert summary["playing"] == 3, summary
    # the peer encodes once per viewer on a shared 2-core box: frames flow, not always 30 fps
    assert summary["fps_min"] >= 5, summary
    assert summary["first_frame_key"] == "2/2", summary
    assert summary["latency_n"] >= 30 and summary["latency_p95_ms"] < 1000, summary
    assert summary["ttff_p95_ms"] is not None and summary["ttff_p95_ms"] < 3000, summary
    assert summary["server_cores"] > 0 and summary["generator_cores"] > 0, summary
