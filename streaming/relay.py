"""Packet fan-out: one publisher track to many viewer tracks, without decoding or encoding.

A `Fanout` per publisher track receives each reassembled encoded frame once (from the ingest
receiver's decoder bypass), wraps it in one `av.Packet`, and appends it to every viewer's
bounded queue. A viewer's aiortc sender pulls `av.Packet`s from its `ViewerTrack` and only
packetizes them (its own SSRC, sequence numbers and timestamp origin: the per-viewer rewrite
comes for free).

Keyframes (video):
- the fan-out keeps every frame since the last keyframe (the GOP cache, bounded), so a joining
  viewer starts at a keyframe at once; with no cache (or one too old) it asks the publisher;
- a viewer's own PLI/FIR becomes a (throttled) request upstream;
- a viewer whose queue overflows (it cannot keep up) loses its queue and waits for the next
  keyframe instead of receiving late media; a keyframe is requested for it.

Across a publisher's reconnect the output timestamps continue where they stopped, so viewers'
decoders see no jump back.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from streaming.aiortc_hooks import encoded_packet
from streaming.frames import ParameterSets, is_keyframe
from streaming.metrics import StreamingMetrics
from streaming.sdp import Codec

GOP_MAX_FRAMES = 300  # ~10 s at 30 fps; beyond, the cache is dropped and a keyframe requested
GOP_STALE_S = 2.0
PAYLOAD_BYTES = 1200  # a joining viewer also triggers a keyframe request when the cache is older


def packets_of(size: int) -> int:
    """RTP packets a frame takes (estimated: aiortc's payloads carry up to ~1,200 bytes)."""
    return 1 + max(0, size - 1) // PAYLOAD_BYTES


@dataclass(slots=True)
class Frame:
    packet: av.Packet[Any]
    keyframe: bool
    size: int


class ViewerTrack(MediaStreamTrack):
    """The track a viewer's sender reads: `recv()` returns `av.Packet`s from a bounded queue."""

    def __init__(self, fanout: Fanout, max_queue: int, on_first: Callable[[], None]) -> None:
        super().__init__()
        self.kind = fanout.codec.kind
        self._fanout = fanout
        self._queue: deque[Frame] = deque()
        self._max = max_queue
        self._waiter: asyncio.Future[None] | None = None
        self.waiting_keyframe = fanout.codec.kind == "video"
        self._on_first: Callable[[], None] | None = on_first

    def offer(self, frame: Frame) -> None:
        """Queue one frame (called by the fan-out, never awaits)."""
        if self.waiting_keyframe:
            if not frame.keyframe:
                return
            self.waiting_keyframe = False
        if len(self._queue) >= self._max:
            self._queue.clear()
            if self.kind == "video":
                self._fanout.dropped_to_keyframe()
                if not frame.keyframe:
                    self.waiting_keyframe = True
                    return
        self._queue.append(frame)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def recv(self) -> av.Packet[Any]:
        while not self._queue:
            if self.readyState != "live":
                raise MediaStreamError
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self._on_first is not None:
            self._on_first()
            self._on_first = None
        frame = self._queue.popleft()
        self._fanout.sent(frame)
        return frame.packet

    def request_keyframe(self) -> None:
        """The viewer's PLI/FIR (intercepted from its sender)."""
        self._fanout.request_keyframe("viewer")

    def stop(self) -> None:
        super().stop()
        self._fanout.remove(self)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class Fanout:
    """One publisher track's frames to its viewers. `request_upstream` is called (by the
    owner, throttled) when a keyframe should be asked of the publisher."""

    def __init__(self, codec: Codec, metrics: StreamingMetrics,
                 request_upstream: Callable[[str], None]) -> None:
        self.codec = codec
        self.viewers: set[ViewerTrack] = set()
        self._metrics = metrics
        self._request = request_upstream
        self._gop: list[Frame] = []
        self._gop_at = 0.0
        self._params = ParameterSets() if codec.name == "h264" else None
        self._offset = 0  # added to the publisher's timestamps (continuity across reconnects)
        self._last_out: int | None = None
        self._restart = False
        self._step = codec.clock_rate // 30 if codec.kind == "video" else codec.clock_rate // 50

    def new_source(self) -> None:
        """A (re)connected publisher: its timestamps start at 0 again; its GOP is new."""
        self._restart = True
        self._gop.clear()

    def push(self, data: bytes, timestamp: int) -> None:
        """One reassembled encoded frame from the publisher."""
        if self._params is not None:
            data = self._params.complete(data)
        if self._restart:
            self._restart = False
            if self._last_out is not None:
                self._offset = self._last_out + self._step - timestamp
        out_ts = timestamp + self._offset
        self._last_out = out_ts
        key = is_keyframe(self.codec.name, data)
        frame = Frame(encoded_packet(data, out_ts, self.codec.clock_rate), key, len(data))
        kind = self.codec.kind
        self._metrics.frames_in.labels(kind).inc()
        self._metrics.packets_in.labels(kind).inc(packets_of(len(data)))
        self._metrics.bytes_in.labels(kind).inc(len(data))
        if kind == "video":
            if key:
                self._gop = [frame]
                self._gop_at = time.monotonic()
                self._metrics.keyframes_in.inc()
            elif self._gop:
                self._gop.append(frame)
                if len(self._gop) > GOP_MAX_FRAMES:
                    self._gop.clear()
                    self._request("gop_too_long")
        for viewer in tuple(self.viewers):
            viewer.offer(frame)

    def add(self, viewer: ViewerTrack) -> None:
        """Register a viewer at once (not on its first recv) and give it the GOP cache."""
        self.viewers.add(viewer)
        if self.codec.kind != "video":
            return
        if self._gop:
            for frame in self._gop:
                viewer.offer(frame)
            if time.monotonic() - self._gop_at > GOP_STALE_S:
                self._request("join")
        else:
            self._request("join")

    def sent(self, frame: Frame) -> None:
        kind = self.codec.kind
        self._metrics.frames_out.labels(kind).inc()
        self._metrics.packets_out.labels(kind).inc(packets_of(frame.size))
        self._metrics.bytes_out.labels(kind).inc(frame.size)

    def remove(self, viewer: ViewerTrack) -> None:
        self.viewers.discard(viewer)

    def dropped_to_keyframe(self) -> None:
        self._metrics.dropped_to_keyframe.inc()
        self._request("overflow")

    def request_keyframe(self, reason: str) -> None:
        self._request(reason)

    def close(self) -> None:
        for viewer in tuple(self.viewers):
            viewer.stop()
        self._gop.clear()
