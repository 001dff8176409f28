"""aiortc WHIP/WHEP clients for the tests: a publisher of a moving synthetic picture (a bright
bar sliding across a dark frame) with a tone, and viewers that decode and read the bar back."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import av
import httpx
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError, VideoStreamTrack

from streaming.aiortc_hooks import use_host_addresses

WIDTH, HEIGHT, BAR = 320, 240, 16
use_host_addresses(["127.0.0.1"])  # this test process's peers gather on loopback only


class MovingBar(VideoStreamTrack):
    """30 fps yuv420p frames; frame n has its bar at x = 4n mod (WIDTH - BAR)."""

    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
        x = (4 * self.n) % (WIDTH - BAR)
        self.n += 1
        y = frame.planes[0]
        row = bytearray([16]) * y.line_size
        row[x:x + BAR] = bytes([235]) * BAR
        y.update(bytes(row) * HEIGHT)
        for plane in frame.planes[1:]:
            plane.update(bytes([128]) * plane.buffer_size)
        frame.pts, frame.time_base = pts, time_base
        return frame


class Tone(MediaStreamTrack):
    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._t = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        rate, samples = 48000, 960
        if self._start is None:
            self._start = time.monotonic()
        wait = self._start + self._t / rate - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        frame = av.AudioFrame(format="s16", layout="mono", samples=samples)
        values = bytearray()
        for i in range(samples):
            v = int(3000 * math.sin(2 * math.pi * 440 * (self._t + i) / rate))
            values += v.to_bytes(2, "little", signed=True)
        frame.planes[0].update(bytes(values))
        frame.pts, frame.sample_rate = self._t, rate
        frame.time_base = fractions.Fraction(1, rate)
        self._t += samples
        return frame


async def until(condition: Callable[[], bool], timeout_s: float, step_s: float = 0.05) -> bool:
    """Poll `condition` until it holds or `timeout_s` passes; returns its last value."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(step_s)
    return True


def new_pc() -> RTCPeerConnection:
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


def bar_position(frame: av.VideoFrame) -> int:
    """Where the bright bar is in a decoded frame (left edge of the bright run on row 10)."""
    plane = frame.planes[0]
    row = bytes(plane)[10 * plane.line_size: 10 * plane.line_size + frame.width]
    bright = [i for i, v in enumerate(row) if v > 128]
    return bright[0] if bright else -1


async def post_offer(http: httpx.AsyncClient, url: str, pc: RTCPeerConnection,
                     token: str | None = None) -> httpx.Response:
    await pc.setLocalDescription(await pc.createOffer())
    headers = {"Content-Type": "application/sdp"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return await http.post(url, content=pc.localDescription.sdp, headers=headers)


@dataclass
class Publisher:
    pc: RTCPeerConnection
    location: str
    video: MovingBar


async def publish(http: httpx.AsyncClient, base: str, show_id: str, token: str, *,
                  audio: bool = True, codec: str | None = None) -> Publisher:
    pc = new_pc()
    video = MovingBar()
    transceiver = pc.addTransceiver(video, direction="sendonly")
    if codec is not None:
        from aiortc import RTCRtpSender

        caps = [c for c in RTCRtpSender.getCapabilities("video").codecs
                if c.mimeType.lower() == f"video/{codec}"]
        transceiver.setCodecPreferences(caps[:1])
    if audio:
        pc.addTransceiver(Tone(), direction="sendonly")
    r = await post_offer(http, f"{base}/v1/shows/{show_id}/whip", pc, token)
    assert r.status_code == 201, r.text
    await pc.setRemoteDescription(RTCSessionDescription(sdp=r.text, type="answer"))
    return Publisher(pc, r.headers["location"], video)


@dataclass
class Viewer:
    pc: RTCPeerConnection
    location: str
    started: float
    positions: list[int] = field(default_factory=list)
    first_frame_s: float | None = None
    audio_frames: int = 0
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    async def frames(self, n: int, timeout_s: float) -> list[int]:
        await until(lambda: len(self.positions) >= n, timeout_s)
        return list(self.positions)

    async def close(self, http: httpx.AsyncClient | None = None) -> None:
        if http is not None:
            with contextlib.suppress(httpx.HTTPError):
                await http.delete(self.location)
        for task in self.tasks:
            task.cancel()
        await self.pc.close()


async def _consume(viewer: Viewer, track: MediaStreamTrack) -> None:
    with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
        while True:
            frame = await track.recv()
            if isinstance(frame, av.VideoFrame):
                if viewer.first_frame_s is None:
                    viewer.first_frame_s = time.monotonic() - viewer.started
                viewer.positions.append(bar_position(frame))
            else:
                viewer.audio_frames += 1


def new_viewer(*, audio: bool = True) -> Viewer:
    """A WHEP viewer not yet connected: its offer is made by `offer_viewer`."""
    pc = new_pc()
    pc.addTransceiver("video", direction="recvonly")
    if audio:
        pc.addTransceiver("audio", direction="recvonly")
    viewer = Viewer(pc, "", time.monotonic())

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        viewer.tasks.append(asyncio.ensure_future(_consume(viewer, track)))

    return viewer


async def offer_viewer(viewer: Viewer) -> str:
    await viewer.pc.setLocalDescription(await viewer.pc.createOffer())
    return str(viewer.pc.localDescription.sdp)


async def accept_answer(viewer: Viewer, r: httpx.Response) -> Viewer:
    """Apply a 201's answer (the viewer then connects and plays)."""
    assert r.status_code == 201, r.text
    viewer.location = r.headers["location"]
    await viewer.pc.setRemoteDescription(RTCSessionDescription(sdp=r.text, type="answer"))
    return viewer


async def watch(http: httpx.AsyncClient, url: str, *, audio: bool = True,
                follow: bool = True) -> Viewer:
    """WHEP to `url` (following one 307 when `follow`)."""
    viewer = new_viewer(audio=audio)
    offer = await offer_viewer(viewer)
    headers = {"Content-Type": "application/sdp"}
    r = await http.post(url, content=offer, headers=headers)
    if r.status_code == 307 and follow:
        r = await http.post(r.headers["location"], content=offer, headers=headers)
    if r.status_code != 201:
        await viewer.pc.close()
        raise AssertionError(f"WHEP {r.status_code}: {r.text}")
    return await accept_answer(viewer, r)


def moving(positions: list[int]) -> bool:
    """The decoded bar moved: several distinct positions, none missing."""
    return len(set(positions)) >= 5 and -1 not in positions
