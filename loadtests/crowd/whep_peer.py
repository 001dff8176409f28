"""aiortc peers for the show night's live video (CONTRACT "Live video"), in their own asyncio
process (locust runs on gevent):

    python -m loadtests.crowd.whep_peer publish --url URL --show ID --token T --seconds N
        WHIP: publishes a small synthetic picture (160x120, 15 fps, VP8 or H.264 as aiortc
        offers) until N seconds pass; prints `{"event": "live"}` once connected.
    python -m loadtests.crowd.whep_peer watch
        WHEP viewers, driven by JSON lines on stdin — `{"op": "open", "sid", "url"}`,
        `{"op": "close", "sid"}` — answering on stdout with `{"sid", "event": "connected",
        "ms"}` (POST to first RTP packet), `{"sid", "event": "window", "packets", "bytes",
        "max_gap_ms"}` every `WINDOW_S`, `{"sid", "event": "failed", "error"}`.

Viewers count RTP packets and never decode them. The aiortc/aioice internals this relies on
(gathering on 127.0.0.1, a receiver's packet handler replaced by a counter) are used through
streaming/aiortc_hooks.py, the one module that touches them."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from typing import Any

import av
import httpx
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import VideoStreamTrack
from aiortc.rtcrtpreceiver import RTCRtpReceiver

from streaming.aiortc_hooks import replace_packet_handler, use_host_addresses

WINDOW_S = 5.0


def use_loopback() -> None:
    """Gather ICE host candidates on 127.0.0.1 only (aioice leaves loopback out)."""
    use_host_addresses(["127.0.0.1"])


class Counter:
    """Packets and bytes received, with the longest silence between two packets."""

    def __init__(self) -> None:
        self.packets = 0
        self.bytes = 0
        self.first: float | None = None
        self.last: float | None = None
        self.max_gap = 0.0

    def add(self, size: int, now: float) -> None:
        if self.first is None:
            self.first = now
        elif self.last is not None:
            self.max_gap = max(self.max_gap, now - self.last)
        self.last = now
        self.packets += 1
        self.bytes += size

    def window(self) -> dict[str, Any]:
        out = {"packets": self.packets, "bytes": self.bytes,
               "max_gap_ms": round(self.max_gap * 1000, 1)}
        self.packets = self.bytes = 0
        self.max_gap = 0.0
        return out


def count_packets(receiver: RTCRtpReceiver, counter: Counter) -> None:
    """Replace this receiver's packet handler (decoding, NACKs, jitter buffer) by a count."""

    async def handle(packet: Any, arrival_time_ms: int) -> None:
        counter.add(len(packet.payload), time.monotonic())

    replace_packet_handler(receiver, handle)


class SmallPicture(VideoStreamTrack):
    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    async def recv(self) -> av.VideoFrame:
        await self.next_timestamp()  # 15 fps: every other tick of aiortc's 30 fps clock
        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame(160, 120, "yuv420p")
        for i, plane in enumerate(frame.planes):
            plane.update(bytes([(self.n * 3 + 60 * i) % 256]) * plane.buffer_size)
        self.n += 1
        frame.pts, frame.time_base = pts, time_base
        return frame


async def post_offer(http: httpx.AsyncClient, url: str, pc: RTCPeerConnection,
                     token: str | None) -> httpx.Response:
    await pc.setLocalDescription(await pc.createOffer())
    headers = {"Content-Type": "application/sdp"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    r = await http.post(url, content=pc.localDescription.sdp, headers=headers)
    if r.status_code == 307:  # the show's publisher is on another process
        r = await http.post(r.headers["location"], content=pc.localDescription.sdp,
                            headers=headers)
    return r


def say(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def publish(url: str, show: str, token: str, seconds: float) -> int:
    pc = RTCPeerConnection()
    pc.addTransceiver(SmallPicture(), direction="sendonly")
    connected = asyncio.Event()

    @pc.on("connectionstatechange")
    def changed() -> None:
        if pc.connectionState == "connected":
            connected.set()

    async with httpx.AsyncClient(timeout=20) as http:
        r = await post_offer(http, f"{url}/v1/shows/{show}/whip", pc, token)
        if r.status_code != 201:
            say({"event": "failed", "error": f"WHIP {r.status_code} {r.text[:200]}"})
            await pc.close()
            return 1
        await pc.setRemoteDescription(RTCSessionDescription(sdp=r.text, type="answer"))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(connected.wait(), 20)
        say({"event": "live" if pc.connectionState == "connected" else "failed",
             "error": pc.connectionState})
        await asyncio.sleep(seconds)
        with contextlib.suppress(httpx.HTTPError):
            await http.delete(r.headers["location"])
    await pc.close()
    return 0


class Viewers:
    def __init__(self) -> None:
        self.sessions: dict[str, tuple[RTCPeerConnection, str, asyncio.Task[None]]] = {}

    async def open(self, http: httpx.AsyncClient, sid: str, url: str) -> None:
        started = time.monotonic()
        pc = RTCPeerConnection()
        counter = Counter()
        for kind in ("video", "audio"):
            count_packets(pc.addTransceiver(kind, direction="recvonly").receiver, counter)
        try:
            r = await post_offer(http, url, pc, None)
            if r.status_code != 201:
                raise RuntimeError(f"WHEP {r.status_code} {r.text[:200]}")
            await pc.setRemoteDescription(RTCSessionDescription(sdp=r.text, type="answer"))
        except Exception as exc:
            await pc.close()
            say({"sid": sid, "event": "failed", "error": repr(exc)})
            return
        task = asyncio.ensure_future(self.report(sid, counter, started))
        self.sessions[sid] = (pc, r.headers.get("location", ""), task)

    async def report(self, sid: str, counter: Counter, started: float) -> None:
        deadline = started + 20
        while counter.first is None:
            if time.monotonic() > deadline:
                say({"sid": sid, "event": "failed", "error": "no RTP packet in 20 s"})
                return
            await asyncio.sleep(0.02)
        say({"sid": sid, "event": "connected", "ms": round((counter.first - started) * 1000, 1)})
        while True:
            await asyncio.sleep(WINDOW_S)
            say({"sid": sid, "event": "window"} | counter.window())

    async def close(self, http: httpx.AsyncClient, sid: str) -> None:
        found = self.sessions.pop(sid, None)
        if found is None:
            return
        pc, location, task = found
        task.cancel()
        if location:
            with contextlib.suppress(httpx.HTTPError):
                await http.delete(location)
        await pc.close()


async def watch() -> int:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    viewers = Viewers()
    opening: set[asyncio.Task[None]] = set()
    async with httpx.AsyncClient(timeout=20) as http:
        while line := await reader.readline():
            cmd = json.loads(line)
            if cmd["op"] == "open":
                task = asyncio.ensure_future(viewers.open(http, cmd["sid"], cmd["url"]))
                opening.add(task)
                task.add_done_callback(opening.discard)
            elif cmd["op"] == "close":
                await viewers.close(http, cmd["sid"])
        for sid in list(viewers.sessions):
            await viewers.close(http, sid)
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    pub = sub.add_parser("publish")
    pub.add_argument("--url", required=True)
    pub.add_argument("--show", required=True)
    pub.add_argument("--token", required=True)
    pub.add_argument("--seconds", type=float, required=True)
    sub.add_parser("watch")
    args = p.parse_args()
    use_loopback()
    if args.cmd == "publish":
        return asyncio.run(publish(args.url, args.show, args.token, args.seconds))
    return asyncio.run(watch())


if __name__ == "__main__":
    sys.exit(main())
