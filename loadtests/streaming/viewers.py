"""WHEP viewers that count instead of decode: one worker process's share of a viewer load.

Each viewer is an aiortc peer connection (recvonly video + audio) doing real ICE, DTLS and SRTP
on 127.0.0.1. A counting viewer taps the decrypted RTP before aiortc's receivers (`tap_rtp`) and
counts packets, bytes, sequence gaps and video frames (marker bits); it tells whether its first
frame was a keyframe. A sampling viewer keeps aiortc's decode path and reads the painted stamps
(streaming.synthetic) to measure camera-to-screen latency. Both time the first frame from the
start of the WHEP POST.

Run by loadtests.streaming.load (one process per ``--processes``); prints one JSON document.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from aiortc.sdp import SessionDescription

from loadtests.streaming.rtp import keyframe, parse_header
from streaming.aiortc_hooks import tap_rtp, use_host_addresses
from streaming.synthetic import latency_us, read_stamp

CONNECT_TIMEOUT_S = 20.0
MAX_RETRY_AFTER_S = 10.0  # a 503's Retry-After is honoured up to this (then the viewer gives up)


@dataclass
class ViewerResult:
    index: int
    sampled: bool
    status: int = 0
    error: str | None = None
    ttff_ms: float | None = None
    first_frame_key: bool | None = None
    frames: int = 0  # video frames completed inside the window
    packets: int = 0  # RTP packets (audio + video) inside the window
    bytes: int = 0
    lost: int = 0  # sequence gaps over the whole session
    other_packets: int = 0  # not video (audio), over the whole session
    latencies_ms: list[float] = field(default_factory=list)
    state: str = "new"
    location: str | None = None
    busy_retries: int = 0  # 503s with Retry-After (the server's join cap) before the answer


class Counter:
    """What a counting viewer's tap does with each packet (pure bookkeeping)."""

    def __init__(self, result: ViewerResult, video_types: dict[int, str], started: float,
                 window: tuple[float, float]) -> None:
        self.result = result
        self.video_types = video_types
        self.started = started
        self.window = window
        self.last_sequence: dict[int, int] = {}
        self.first_timestamp: int | None = None

    async def handle(self, data: bytes, arrival_time_ms: int) -> None:
        self.count(data, time.time())

    def count(self, data: bytes, now: float) -> None:
        header = parse_header(data)
        if header is None:
            return
        result = self.result
        previous = self.last_sequence.get(header.ssrc)
        if previous is not None:
            gap = (header.sequence - previous) & 0xFFFF
            if 1 < gap < 0x8000:
                result.lost += gap - 1
        self.last_sequence[header.ssrc] = header.sequence
        inside = self.window[0] <= now < self.window[1]
        if inside:
            result.packets += 1
            result.bytes += len(data)
        codec = self.video_types.get(header.payload_type)
        if codec is None:
            result.other_packets += 1
            return
        if result.first_frame_key is None:
            key = keyframe(codec, data[header.payload_offset:])
            if key is not None:
                result.first_frame_key = key
                self.first_timestamp = header.timestamp
        if header.marker:
            if result.ttff_ms is None and self.first_timestamp is not None:
                result.ttff_ms = round((now - self.started) * 1000, 1)
            if inside:
                result.frames += 1


def video_payload_types(answer_sdp: str) -> dict[int, str]:
    """Payload type → codec name (vp8, h264) of the answer's video sections."""
    types: dict[int, str] = {}
    for media in SessionDescription.parse(answer_sdp).media:
        if media.kind == "video":
            for codec in media.rtp.codecs:
                name = codec.mimeType.split("/")[1].lower()
                if name in ("vp8", "h264"):
                    types[codec.payloadType] = name
    return types


async def _sample(track: MediaStreamTrack, result: ViewerResult, started: float,
                  window: tuple[float, float]) -> None:
    with contextlib.suppress(MediaStreamError):
        while True:
            frame = await track.recv()
            now = time.time()
            if track.kind != "video":
                continue
            if result.ttff_ms is None:
                result.ttff_ms = round((now - started) * 1000, 1)
            if window[0] <= now < window[1]:
                result.frames += 1
                stamp = read_stamp(frame)
                if stamp is not None:
                    result.latencies_ms.append(latency_us(stamp, time.time_ns() // 1000) / 1000)


async def run_viewer(client: httpx.AsyncClient, url: str, token: str | None,
                     result: ViewerResult, window: tuple[float, float],
                     tasks: list[asyncio.Task[None]], pcs: list[RTCPeerConnection]) -> None:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pcs.append(pc)  # closed at the end whatever happens
    pc.addTransceiver("video", direction="recvonly")
    pc.addTransceiver("audio", direction="recvonly")
    started = time.time()
    if result.sampled:
        @pc.on("track")
        def _track(track: MediaStreamTrack) -> None:
            tasks.append(asyncio.ensure_future(_sample(track, result, started, window)))

    @pc.on("connectionstatechange")
    def _state() -> None:
        result.state = pc.connectionState

    await pc.setLocalDescription(await pc.createOffer())
    headers = {"Content-Type": "application/sdp"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    response = await _post(client, url, pc.localDescription.sdp, headers, result)
    result.status = response.status_code
    if "location" in response.headers:
        result.location = str(response.url.join(response.headers["location"]))
    if response.status_code != 201:
        result.error = f"{response.status_code}: {response.text[:200]}"
        return
    if not result.sampled:
        counter = Counter(result, video_payload_types(response.text), started, window)
        tap_rtp(pc.getTransceivers()[0].receiver.transport, counter.handle)
    await pc.setRemoteDescription(RTCSessionDescription(response.text, "answer"))


def retry_after_s(response: httpx.Response) -> float | None:
    """Seconds to wait before POSTing again: a 503 with a usable Retry-After (pure)."""
    value = response.headers.get("retry-after", "")
    if response.status_code != 503 or not value.isdigit():
        return None
    seconds = float(value)
    return seconds if seconds <= MAX_RETRY_AFTER_S else None


async def _post(client: httpx.AsyncClient, url: str, offer: str, headers: dict[str, str],
                result: ViewerResult) -> httpx.Response:
    """POST the offer, honouring a 503's Retry-After as WHEP clients should (the worker
    cancels the viewer at its window's end, so the retries are bounded)."""
    while True:
        response = await client.post(url, content=offer, headers=headers)
        wait = retry_after_s(response)
        if wait is None:
            return response
        result.busy_retries += 1
        await asyncio.sleep(wait)


async def run_worker(args: argparse.Namespace) -> dict[str, Any]:
    use_host_addresses(["127.0.0.1"])
    window = (args.window_start, args.window_end)
    results = [ViewerResult(index=i, sampled=i in set(args.sampled))
               for i in range(args.first, args.total, args.stride)]
    pcs: list[RTCPeerConnection] = []
    tasks: list[asyncio.Task[None]] = []
    usage: dict[str, float] = {}
    async with httpx.AsyncClient(timeout=CONNECT_TIMEOUT_S, follow_redirects=True) as client:

        async def join(result: ViewerResult) -> None:
            # each viewer joins on its own schedule: a slow answer does not delay the next one
            await asyncio.sleep(max(0.0, args.join_at + result.index * args.join_interval
                                    - time.time()))
            try:
                await run_viewer(client, args.url, args.token, result, window, tasks, pcs)
            except (httpx.HTTPError, OSError, ValueError) as exc:
                result.error = f"{type(exc).__name__}: {exc}"

        joins = [asyncio.ensure_future(join(result)) for result in results]
        await asyncio.sleep(max(0.0, args.window_start - time.time()))
        usage["start"] = _cpu_seconds()
        await asyncio.sleep(max(0.0, args.window_end - time.time()))
        usage["end"] = _cpu_seconds()
        late = sum(1 for j in joins if not j.done())
        for j in joins:
            j.cancel()
        await asyncio.gather(*joins, return_exceptions=True)
        for result in results:
            if result.status == 201 and result.location:
                with contextlib.suppress(httpx.HTTPError):
                    await client.delete(result.location)
    for pc in pcs:
        await pc.close()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"viewers": [asdict(r) for r in results], "late_joins": late,
            "cpu_s": round(usage["end"] - usage["start"], 3)}


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m loadtests.streaming.viewers")
    parser.add_argument("url")
    parser.add_argument("--token")
    parser.add_argument("--first", type=int, default=0, help="index of this worker's first viewer")
    parser.add_argument("--stride", type=int, default=1, help="its next ones: every stride-th")
    parser.add_argument("--total", type=int, required=True, help="viewers in all workers")
    parser.add_argument("--sampled", type=int, nargs="*", default=[])
    parser.add_argument("--join-at", type=float, required=True, help="epoch s of viewer 0's POST")
    parser.add_argument("--join-interval", type=float, default=0.05)
    parser.add_argument("--window-start", type=float, required=True)
    parser.add_argument("--window-end", type=float, required=True)
    args = parser.parse_args(argv)
    if not 0 < args.total <= 1000 or args.stride < 1 or not 0 <= args.first < args.total:
        parser.error("--total must be 1-1000, --first below it, --stride at least 1")
    if not 0 < args.window_end - time.time() <= 900:
        parser.error("the window must end within 15 minutes")
    return args


def main(argv: list[str] | None = None) -> int:
    outcome = asyncio.run(run_worker(parse_args(argv)))
    json.dump(outcome, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
