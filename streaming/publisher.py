"""A WHIP publisher (aiortc) sending the synthetic camera and tone: for demos, tests and benchmarks.

    python -m streaming.publisher http://127.0.0.1:8000/v1/shows/ID/whip --token T \
        [--seconds 30] [--size 640x480] [--fps 30] [--codec vp8|h264] [--no-audio]

It POSTs an SDP offer (all candidates inline, no trickle) with ``Authorization: Bearer T``,
follows a 307/308 to another process, applies the 201's answer, sends 30 fps of painted frames
(streaming.synthetic: each frame carries its number and capture time) until ``--seconds`` pass,
the connection fails or it is interrupted, then DELETEs the session's ``Location``. It prints
one JSON line: how long the exchange and the connection took and how many frames it sent.

On a loopback-only target (127.0.0.1 / localhost) it gathers its ICE host candidate on
127.0.0.1, which aioice leaves out by default (streaming.aiortc_hooks).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

import av
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)

from streaming.aiortc_hooks import use_host_addresses
from streaming.synthetic import (
    AUDIO_FRAME_SAMPLES,
    AUDIO_SAMPLE_RATE,
    AudioPainter,
    VideoPainter,
    parse_size,
)

MAX_SECONDS = 24 * 3600
MAX_REDIRECTS = 3
HTTP_TIMEOUT_S = 10.0
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


class SyntheticVideoTrack(MediaStreamTrack):
    """Painted frames at ``fps``; each carries its number and the time it was handed over."""

    kind = "video"

    def __init__(self, width: int, height: int, fps: int = 30) -> None:
        super().__init__()
        self._painter = VideoPainter(width, height)
        self._fps = fps
        self._start: float | None = None
        self.frames = 0

    async def recv(self) -> av.VideoFrame:
        now = time.monotonic()
        if self._start is None:
            self._start = now
        due = self._start + self.frames / self._fps
        if due > now:
            await asyncio.sleep(due - now)
        frame = self._painter.frame(self.frames, time.time_ns() // 1000)
        frame.pts = self.frames * (90_000 // self._fps)
        self.frames += 1
        return frame


class SyntheticAudioTrack(MediaStreamTrack):
    """A 400 Hz tone in 20 ms frames."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._painter = AudioPainter()
        self._start: float | None = None
        self.frames = 0

    async def recv(self) -> av.AudioFrame:
        now = time.monotonic()
        if self._start is None:
            self._start = now
        due = self._start + self.frames * AUDIO_FRAME_SAMPLES / AUDIO_SAMPLE_RATE
        if due > now:
            await asyncio.sleep(due - now)
        frame = self._painter.frame(self.frames)
        self.frames += 1
        return frame


class WhipError(Exception):
    """The server refused the offer, or answered something a WHIP client cannot use."""


@dataclass
class HttpAnswer:
    status: int
    location: str | None
    body: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)


def http_request(
    method: str, url: str, token: str | None, body: bytes | None = None,
    content_type: str = "application/sdp",
) -> HttpAnswer:
    """One blocking request (run it in a thread); 307/308 followed with the same body."""
    for _ in range(MAX_REDIRECTS + 1):
        request = urllib.request.Request(url, data=body, method=method)  # noqa: S310
        if body is not None:
            request.add_header("Content-Type", content_type)
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with _OPENER.open(request, timeout=HTTP_TIMEOUT_S) as response:
                answer = HttpAnswer(response.status, response.headers.get("Location"),
                                    response.read().decode("utf-8", "replace"), url,
                                    dict(response.headers.items()))
        except urllib.error.HTTPError as exc:
            answer = HttpAnswer(exc.code, exc.headers.get("Location"),
                                exc.read().decode("utf-8", "replace"), url,
                                dict(exc.headers.items()))
        if answer.status in (307, 308) and answer.location:
            url = urllib.parse.urljoin(url, answer.location)
            continue
        if answer.location:
            answer.location = urllib.parse.urljoin(url, answer.location)
        return answer
    raise WhipError(f"more than {MAX_REDIRECTS} redirects")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # http_request follows 307/308 itself, keeping the method and body


_OPENER = urllib.request.build_opener(_NoRedirect)


def loopback_target(url: str) -> bool:
    return (urllib.parse.urlsplit(url).hostname or "") in LOOPBACK_HOSTS


def prefer_codec(pc: RTCPeerConnection, kind: str, mime: str) -> None:
    """Offer only ``mime`` (e.g. ``video/H264``) on the ``kind`` transceivers."""
    codecs = [c for c in RTCRtpSender.getCapabilities(kind).codecs
              if c.mimeType.lower() in (mime.lower(), f"{kind}/rtx")]
    for transceiver in pc.getTransceivers():
        if transceiver.kind == kind:
            transceiver.setCodecPreferences(codecs)


@dataclass
class PublishResult:
    status: int
    location: str | None
    post_ms: float
    connected_ms: float | None
    video_frames: int
    audio_frames: int
    seconds: float
    ended_by: str
    final_state: str


async def publish(
    url: str, token: str | None, *, seconds: float, size: str = "640x480", fps: int = 30,
    codec: str = "vp8", audio: bool = True, stop: asyncio.Event | None = None,
) -> PublishResult:
    """Publish until ``seconds`` pass, the connection fails or ``stop`` is set; then DELETE."""
    width, height = parse_size(size)
    stop = stop or asyncio.Event()
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    video = SyntheticVideoTrack(width, height, fps)
    pc.addTrack(video)
    sound = SyntheticAudioTrack() if audio else None
    if sound is not None:
        pc.addTrack(sound)
    prefer_codec(pc, "video", "video/H264" if codec == "h264" else "video/VP8")
    connected = asyncio.Event()

    @pc.on("connectionstatechange")
    def _state() -> None:
        if pc.connectionState == "connected":
            connected.set()
        elif pc.connectionState in ("failed", "closed"):
            stop.set()

    started = time.monotonic()
    location: str | None = None
    try:
        await pc.setLocalDescription(await pc.createOffer())
        answer = await asyncio.to_thread(
            http_request, "POST", url, token, pc.localDescription.sdp.encode())
        post_ms = (time.monotonic() - started) * 1000
        if answer.status != 201:
            raise WhipError(f"WHIP POST answered {answer.status}: {answer.body[:500]}")
        location = answer.location
        await pc.setRemoteDescription(RTCSessionDescription(answer.body, "answer"))
        connected_ms = await _wait_connected(connected, stop, started)
        ended_by = await _run(stop, seconds, started)
        return PublishResult(answer.status, location, round(post_ms, 1), connected_ms,
                             video.frames, sound.frames if sound else 0,
                             round(time.monotonic() - started, 2), ended_by,
                             pc.connectionState)
    finally:
        if location:
            await asyncio.to_thread(_delete_quietly, location, token)
        await pc.close()


async def _wait_connected(
    connected: asyncio.Event, stop: asyncio.Event, started: float,
) -> float | None:
    waiters = [asyncio.ensure_future(connected.wait()), asyncio.ensure_future(stop.wait())]
    await asyncio.wait(waiters, timeout=15, return_when=asyncio.FIRST_COMPLETED)
    for waiter in waiters:
        waiter.cancel()
    if not connected.is_set():
        raise WhipError("the peer connection did not connect within 15 s")
    return round((time.monotonic() - started) * 1000, 1)


async def _run(stop: asyncio.Event, seconds: float, started: float) -> str:
    remaining = seconds - (time.monotonic() - started)
    try:
        await asyncio.wait_for(stop.wait(), timeout=max(remaining, 0))
    except TimeoutError:
        return "time"
    return "stopped"


def _delete_quietly(location: str, token: str | None) -> None:
    with contextlib.suppress(OSError):  # the server is gone: nothing left to end
        http_request("DELETE", location, token)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m streaming.publisher", description="Publish a synthetic show via WHIP.")
    parser.add_argument("url", help="the show's WHIP endpoint, e.g. .../v1/shows/ID/whip")
    parser.add_argument("--token", help="the seller's bearer token")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--size", default="640x480", help="WIDTHxHEIGHT, e.g. 1280x720")
    parser.add_argument("--fps", type=int, default=30, choices=range(1, 61), metavar="1-60")
    parser.add_argument("--codec", choices=("vp8", "h264"), default="vp8")
    parser.add_argument("--no-audio", action="store_true")
    parser.add_argument("--host-address", action="append", default=None,
                        help="gather ICE host candidates on this address (repeatable); "
                             "127.0.0.1 by default when the URL is on loopback")
    args = parser.parse_args(argv)
    if not 0 < args.seconds <= MAX_SECONDS:
        parser.error(f"--seconds must be in (0, {MAX_SECONDS}]")
    try:
        parse_size(args.size)
    except ValueError as exc:
        parser.error(str(exc))
    return args


async def _main(args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        result = await publish(args.url, args.token, seconds=args.seconds, size=args.size,
                               fps=args.fps, codec=args.codec, audio=not args.no_audio,
                               stop=stop)
    except (WhipError, OSError) as exc:
        print(json.dumps({"error": str(exc)}), flush=True)
        return 1
    print(json.dumps(result.__dict__), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    hosts = args.host_address or (["127.0.0.1"] if loopback_target(args.url) else None)
    if hosts:
        use_host_addresses(hosts)
    return asyncio.run(_main(args))


if __name__ == "__main__":
    sys.exit(main())
