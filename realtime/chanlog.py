"""Per-channel state of the hub: the log of publications not yet written to every local
subscriber, each subscriber's place in it, and frames built once per (start, end, protocol).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from realtime import wire
from realtime.broker import Broker, Message
from realtime.channels import kind_of
from realtime.client import CLOSE_INSUFFICIENT_STATE, Client, OutFrame
from realtime.metrics import HubMetrics
from realtime.protocol import Position
from realtime.wire import Codec

log = logging.getLogger("souk.hub")


class ChannelLog:
    """One channel with local subscribers: its subscribers and how far each has been written,
    its last (epoch, offset), the publications not yet written to every subscriber, and the
    state of the sweep under way (see hub.py's module doc)."""

    __slots__ = (
        "active",
        "base",
        "cursor",
        "epoch",
        "floors",
        "frames",
        "frames_end",
        "joiners",
        "kind",
        "log",
        "mp",
        "msgpack_subs",
        "name",
        "next_sweep_at",
        "offset",
        "own_s",
        "reader",
        "ready",
        "subs",
        "sweep",
        "sweep_end",
        "sweep_started",
        "timer",
    )

    def __init__(self, name: str, ready: asyncio.Future[None]) -> None:
        self.name = name
        self.kind = kind_of(name)
        # subscriber -> sequence number (in this channel's log) it has been written up to
        self.subs: dict[Client, int] = {}
        self.msgpack_subs = 0
        # subscriber -> the position its subscribe result gave it, while that is ahead of
        # what the bus has delivered here (see `Hub.release`, `after_floor`)
        self.floors: dict[Client, Position] = {}
        self.epoch: str | None = None
        self.offset = 0
        self.log: list[Message] = []  # publications not yet written to every subscriber
        self.base = 0  # sequence number of log[0]
        self.mp: dict[int, bytes] = {}  # sequence number -> MessagePack form
        self.active = False  # in the hub's sweep queue
        self.sweep: list[Client] | None = None  # subscribers of the sweep under way
        self.cursor = 0
        self.sweep_end = 0  # log end when the current/last sweep started
        self.sweep_started = -1e9
        self.next_sweep_at = -1e9  # earliest start of the next sweep (perf_counter)
        self.own_s = 0.0  # time the sweep under way has spent writing (its slices)
        self.timer: asyncio.TimerHandle | None = None  # next sweep, when too soon after the last
        self.frames: dict[tuple[int, Codec], OutFrame] = {}  # (start, codec) -> frame to end
        self.frames_end = -1
        self.ready = ready
        self.joiners: list[asyncio.Future[Position]] = []
        self.reader: asyncio.Task[None] | None = None  # reading the position for joiners

    async def position(self, broker: Broker) -> Position:
        """The channel's position, read once for every subscriber that joined before the read
        started (a reconnect storm of thousands on one channel costs a few Redis calls)."""
        fut: asyncio.Future[Position] = asyncio.get_running_loop().create_future()
        self.joiners.append(fut)
        if self.reader is None:
            self.reader = asyncio.ensure_future(self._read_positions(broker))
        return await fut

    async def _read_positions(self, broker: Broker) -> None:
        try:
            while self.joiners:
                batch, self.joiners = self.joiners, []
                try:
                    position = await broker.position(self.name)
                except Exception as exc:
                    for fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                else:
                    for fut in batch:
                        if not fut.done():
                            fut.set_result(position)
        finally:
            self.reader = None

    @property
    def end(self) -> int:
        return self.base + len(self.log)

    def msgpack_at(self, seq: int) -> bytes:
        out = self.mp.get(seq)
        if out is None:
            out = self.mp[seq] = wire.json_to_msgpack(self.log[seq - self.base].payload)
        return out

    def frame(self, start: int, end: int, codec: Codec) -> OutFrame:
        """The frame holding log[start:end] in `codec`, built once per sweep position."""
        if self.frames_end != end:
            self.frames.clear()
            self.frames_end = end
        out = self.frames.get((start, codec))
        if out is None:
            lo, hi = start - self.base, end - self.base
            if codec is Codec.JSON:
                payload = b"\n".join([m.payload for m in self.log[lo:hi]])
            else:
                payload = b"".join([self.msgpack_at(q) for q in range(start, end)])
            out = self.frames[(start, codec)] = OutFrame(codec, payload)
        return out

    def trim(self, upto: int) -> None:
        """Forget log entries every subscriber has been written (those before `upto`)."""
        n = upto - self.base
        if n <= 0:
            return
        del self.log[:n]
        if self.mp:
            for q in range(self.base, upto):
                self.mp.pop(q, None)
        self.base = upto

    def write_slice(self, budget: int, deadline: float, high_water: int,
                    metrics: HubMetrics) -> int:
        """Write to the next `budget` subscribers of the channel's sweep, stopping early at
        `deadline` (perf_counter); returns how many connections it visited. A client whose
        transport is full gets the publications queued in its outbox instead."""
        ch = self
        snap = ch.sweep
        assert snap is not None
        i = first = ch.cursor
        stop = min(len(snap), i + budget)
        subs = ch.subs
        floors = ch.floors
        end = ch.end
        json_frame: OutFrame | None = None
        json_start = -1
        delivered = written = nbytes = 0
        while i < stop:
            if not (i - first) & 15 and i > first and time.perf_counter() >= deadline:
                break
            client = snap[i]
            i += 1
            start = subs.get(client)
            if start is None or start >= end or client.closed:
                continue
            subs[client] = end
            if client.recovering or (floors and client in floors):
                start = ch.joiner_start(client, start, end, metrics)
                if start >= end:
                    continue
            delivered += end - start
            if client.codec is Codec.JSON:
                if start != json_start:
                    json_frame = ch.frame(start, end, Codec.JSON)
                    json_start = start
                frame = json_frame
            else:
                frame = ch.frame(start, end, Codec.MSGPACK)
            assert frame is not None
            if not client.outbox and client.sink.buffered() < high_water:
                client.sink.write(frame)
                written += 1
                nbytes += len(frame.payload)
            else:
                client.queue_publications(ch, start, end)
        ch.cursor = i
        if delivered:
            metrics.publications_out.labels(ch.kind).inc(delivered)
        if written:
            metrics.writes.inc(written)
            metrics.bytes_out.inc(nbytes)
        return max(1, i - first)

    def joiner_start(self, client: Client, start: int, end: int, metrics: HubMetrics) -> int:
        """For a client still subscribing here (its publications are held for `Hub.release`)
        or whose subscribe result was ahead of the bus: where its write of log[start:end]
        begins (`end`: nothing to write now)."""
        held = client.recovering.get(self.name)
        if held is not None:
            held.extend(self.log[start - self.base:end - self.base])
            return end
        if client in self.floors:
            return self.after_floor(client, start, end, metrics)
        return start

    def after_floor(self, client: Client, start: int, end: int, metrics: HubMetrics) -> int:
        """For a client whose subscribe result was ahead of the bus here (`floors`): where
        its write of log[start:end] begins, past the offsets it already has (`end`: nothing
        to write). The first offset it lacks must follow on from its floor, else it is told
        to recover (4010); from there it is like any subscriber (`Hub.deliver` keeps the
        channel's offsets gapless). Latest-value publications passed over are still sent."""
        floor = self.floors[client]
        cache: dict[int, bytes] = {}
        for q in range(start, end):
            msg = self.log[q - self.base]
            if msg.offset is None:
                body = msg.payload if client.codec is Codec.JSON else msgpack_of(msg, cache)
                client.send(body, key=(msg.channel, msg.key) if msg.key else None)
                continue
            if msg.epoch == floor.epoch and msg.offset <= floor.offset:
                continue
            del self.floors[client]
            if msg.epoch != floor.epoch or msg.offset != floor.offset + 1:
                metrics.resyncs.labels(self.kind).inc()
                client.close(CLOSE_INSUFFICIENT_STATE, "insufficient state")
                return end
            return q
        return end


@dataclass(frozen=True, slots=True)
class SubscribeResult:
    position: Position
    recovered: bool
    publications: list[bytes]




def msgpack_of(msg: Message, cache: dict[int, bytes]) -> bytes:
    """`msg` as MessagePack, converted once per `cache` (one delivery round)."""
    out = cache.get(id(msg))
    if out is None:
        out = cache[id(msg)] = wire.json_to_msgpack(msg.payload)
    return out


class BusOps:
    """Bus (un)subscribe operations, run strictly one after another per channel."""

    def __init__(self) -> None:
        self._last: dict[str, asyncio.Task[None]] = {}

    def run(self, name: str, op: Callable[[str], Coroutine[Any, Any, None]]) -> asyncio.Task[None]:
        """Run `op(name)` after the channel's previous operation, whatever became of it."""
        prev = self._last.get(name)

        async def run() -> None:
            if prev is not None:
                with contextlib.suppress(Exception):
                    await prev
            await op(name)

        task = asyncio.ensure_future(run())
        self._last[name] = task

        def done(t: asyncio.Task[None]) -> None:
            if self._last.get(name) is t:
                del self._last[name]
            if not t.cancelled() and t.exception() is not None:
                log.warning("bus operation failed", extra={"error": repr(t.exception())})

        task.add_done_callback(done)
        return task
