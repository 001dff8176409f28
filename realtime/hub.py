"""Node-local fan-out: one bus subscription per channel per process, encode once, write many.

`Hub` keeps, per channel this process has local subscribers for, the subscribed `Client`s and the
channel's last (epoch, offset). Publications arriving from the broker are appended to the channel's
log and written by a *sweep*: a pass over the channel's subscribers, a bounded slice of connections
per event-loop turn (at most `slice_size`, and at most `slice_s` of writing), so Redis reads,
publish commands, bids and new connections are served between slices. Each subscriber records how
far in the log it has been written; the sweep writes it everything from there to the log's end in
one frame, built once per (start, end, protocol) and shared by every subscriber at the same point.
A publication that arrives while a sweep is under way joins it for the subscribers the sweep has
not reached yet; the others get it in the next sweep, which starts when this one ends but no sooner
than `flush_delay_s` after this one started (so at small fan-outs each write still carries several
publications), and, when the loop had other work during the sweep (bids, commands, another process
on the same core), no sooner than that much time after it ended (at most `max_backoff_s`): under
contention the fan-out yields and each write carries more, instead of sweeping back to back and
starving everything else. A publication on an idle channel starts a sweep at once.

Backpressure (never awaits a client): a client whose transport buffer is above `high_water`
gets messages queued in its own outbox instead; latest-value publications (those with a `key`)
replace the queued one with the same key. When the outbox plus the transport buffer pass
`outbox_max_bytes` the client is closed with 4008 and recovers on reconnect.

Gaps: offsets on a channel must arrive as offset+1 within one epoch. Anything else (a new epoch
after Redis lost the channel, a lost pub/sub message, a bus reconnect that missed traffic) makes
the hub close that channel's subscribers with 4010 so they resubscribe with `since` and learn
`recovered: false` (or get what they missed).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from realtime import wire
from realtime.broker import Broker, Message, Ordered
from realtime.channels import Channel, Subject, kind_of
from realtime.metrics import HubMetrics
from realtime.protocol import Position
from realtime.wire import Codec

log = logging.getLogger("souk.hub")

CLOSE_SHUTDOWN = 4000
CLOSE_SLOW = 4008
CLOSE_INSUFFICIENT_STATE = 4010
CLOSE_FLOOD = 4029
CLOSE_BAD_TOKEN = 4501
CLOSE_FORBIDDEN = 4503


class OutFrame:
    """One server frame: `payload` holds one or several messages; `raw` adds the header once."""

    __slots__ = ("_raw", "codec", "payload")

    def __init__(self, codec: Codec, payload: bytes) -> None:
        self.codec = codec
        self.payload = payload
        self._raw: bytes | None = None

    @property
    def raw(self) -> bytes:
        if self._raw is None:
            self._raw = wire.frame(self.codec, self.payload)
        return self._raw


class Sink(Protocol):
    """Where a client's frames go (see transport.py). Every method returns at once."""

    def write(self, frame: OutFrame) -> None: ...

    def buffered(self) -> int:
        """Bytes written but not yet handed to the kernel."""

    def close(self, code: int, reason: str) -> None:
        """Send a close frame with `code` and end the connection (bounded in time)."""


class Client:
    """One connection as the hub sees it."""

    __slots__ = ("_latest", "_queue", "_queued_bytes", "_recovering", "_skip", "channels",
                 "closed", "codec", "hub", "id", "sink", "subject")

    _ids = itertools.count(1)

    def __init__(self, hub: Hub, sink: Sink, codec: Codec, subject: Subject) -> None:
        self.id = next(Client._ids)
        self.hub = hub
        self.sink = sink
        self.codec = codec
        self.subject = subject
        self.channels: set[str] = set()
        self.closed = False
        self._queue: list[bytes] = []
        self._queued_bytes = 0
        self._latest: dict[tuple[str, str], int] = {}
        self._recovering: dict[str, list[Message]] = {}
        # channel -> (epoch, offset) this client already has but the hub has not seen yet
        self._skip: dict[str, tuple[str, int]] | None = None

    @property
    def queued_bytes(self) -> int:
        return self._queued_bytes

    def send(self, message: bytes, *, key: tuple[str, str] | None = None) -> None:
        """Queue or write one encoded message (a reply, a push) after everything before it."""
        if self.closed:
            return
        if not self._queue and self.sink.buffered() < self.hub.high_water:
            self.sink.write(OutFrame(self.codec, message))
            self.hub.metrics.bytes_out.inc(len(message))
            self.hub.metrics.writes.inc()
            return
        self._enqueue(message, key)
        self.hub.blocked(self)

    def queue_publications(self, ch: _Chan, start: int, end: int) -> None:
        """Queue the channel's publications [start, end) (the transport is full or the
        outbox is not empty); the hub retries the outbox later."""
        json = self.codec is Codec.JSON
        for q in range(start, end):
            msg = ch.log[q - ch.base]
            self._enqueue(msg.payload if json else ch.msgpack_at(q),
                          (msg.channel, msg.key) if msg.key else None)
            if self.closed:
                return
        self.hub.blocked(self)

    def _enqueue(self, message: bytes, key: tuple[str, str] | None) -> None:
        if key is not None:
            index = self._latest.get(key)
            if index is not None:
                self._queued_bytes += len(message) - len(self._queue[index])
                self._queue[index] = message
                self.hub.metrics.outbox_drops.labels(kind_of(key[0])).inc()
                return
            self._latest[key] = len(self._queue)
        self._queue.append(message)
        self._queued_bytes += len(message)
        if self._queued_bytes + self.sink.buffered() > self.hub.outbox_max_bytes:
            self.hub.slow(self)

    def drain(self) -> bool:
        """Write the outbox as one frame if the transport has room; True while still blocked."""
        if self.closed:
            return False
        if not self._queue:
            return False
        if self.sink.buffered() >= self.hub.high_water:
            return True
        payload = self.codec.separator.join(self._queue)
        self._queue.clear()
        self._latest.clear()
        self._queued_bytes = 0
        self.sink.write(OutFrame(self.codec, payload))
        self.hub.metrics.bytes_out.inc(len(payload))
        self.hub.metrics.writes.inc()
        return False

    def close(self, code: int, reason: str = "") -> None:
        """Close the connection (idempotent). The endpoint then calls `hub.disconnect`."""
        if self.closed:
            return
        self.closed = True
        self._queue.clear()
        self._latest.clear()
        self._queued_bytes = 0
        self.hub.metrics.disconnects.labels(str(code)).inc()
        self.sink.close(code, reason)


class _Chan:
    __slots__ = (
        "active",
        "base",
        "cursor",
        "epoch",
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
        "reading",
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
        self.reading = False

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


@dataclass(frozen=True, slots=True)
class SubscribeResult:
    position: Position
    recovered: bool
    publications: list[bytes]


def _msgpack_of(msg: Message, cache: dict[int, bytes]) -> bytes:
    out = cache.get(id(msg))
    if out is None:
        out = cache[id(msg)] = wire.json_to_msgpack(msg.payload)
    return out


class Hub:
    def __init__(
        self,
        broker: Broker,
        *,
        metrics: HubMetrics,
        outbox_max_bytes: int = 1 << 20,
        flush_delay_s: float = 0.02,
        recover_max: int = 300,
        high_water: int = 64 * 1024,
        max_connections: int = 10_000,
        slice_size: int = 256,
        slice_s: float = 0.001,
        max_backoff_s: float = 0.25,
    ) -> None:
        self.broker = broker
        self.metrics = metrics
        self.outbox_max_bytes = outbox_max_bytes
        self.flush_delay_s = flush_delay_s
        self.recover_max = recover_max
        self.high_water = high_water
        self.max_connections = max_connections
        self.slice_size = max(1, slice_size)
        self.slice_s = slice_s  # a slice also ends after this long (big frames write slower)
        self.max_backoff_s = max_backoff_s
        self.channels: dict[str, _Chan] = {}
        self.clients: set[Client] = set()
        self.draining = False
        self._empty = asyncio.Event()
        self._empty.set()
        self._active: collections.deque[_Chan] = collections.deque()  # channels to sweep
        self._blocked: set[Client] = set()
        self._step_scheduled = False
        self._retry_scheduled = False
        self._bus_ops: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._taps: dict[str, Callable[[Message], None]] = {}
        broker.attach(self.deliver, self.resync_all)

    # -- connections -------------------------------------------------------------------

    def full(self) -> bool:
        return len(self.clients) >= self.max_connections

    def connect(self, sink: Sink, codec: Codec, subject: Subject) -> Client:
        client = Client(self, sink, codec, subject)
        self.clients.add(client)
        self._empty.clear()
        self.metrics.connections.set(len(self.clients))
        return client

    def disconnect(self, client: Client) -> None:
        """Forget a finished connection: drop its subscriptions (and bus ones left unused)."""
        client.closed = True
        for name in list(client.channels):
            self._drop(client, name)
        self.clients.discard(client)
        self._blocked.discard(client)
        self.metrics.connections.set(len(self.clients))
        if not self.clients:
            self._empty.set()

    def slow(self, client: Client) -> None:
        self.metrics.slow_disconnects.inc()
        client.close(CLOSE_SLOW, "slow consumer")

    def blocked(self, client: Client) -> None:
        self._blocked.add(client)
        self._schedule_retry()

    # -- subscriptions -----------------------------------------------------------------

    def _bus(self, name: str, op: Callable[[str], Coroutine[Any, Any, None]]) -> asyncio.Task[None]:
        """Run bus (un)subscribe operations on one channel strictly one after another."""
        prev = self._bus_ops.get(name)

        async def run() -> None:
            if prev is not None:
                with contextlib.suppress(Exception):
                    await prev
            await op(name)

        task = asyncio.ensure_future(run())
        self._bus_ops[name] = task

        def done(t: asyncio.Task[None]) -> None:
            if self._bus_ops.get(name) is t:
                del self._bus_ops[name]
            if not t.cancelled() and t.exception() is not None:
                log.warning("bus operation failed", extra={"error": repr(t.exception())})

        task.add_done_callback(done)
        return task

    async def subscribe(
        self, client: Client, channel: Channel, since: Position | None
    ) -> SubscribeResult:
        """Subscribe `client`; live publications are held back until the caller has sent the
        result and called `release(client, channel, result)`. Raises broker errors (the
        subscription is then undone)."""
        name = channel.name
        ch = self.channels.get(name)
        if ch is None:
            ch = self.channels[name] = _Chan(name, self._bus(name, self.broker.subscribe))
            self.metrics.channels.set(len(self.channels))
        client._recovering[name] = []
        ch.subs[client] = ch.end
        if client.codec is Codec.MSGPACK:
            ch.msgpack_subs += 1
        client.channels.add(name)
        self.metrics.subscriptions.labels(ch.kind).inc()
        try:
            await asyncio.shield(ch.ready)
            if since is not None:
                rec = await self.broker.recover(name, since, limit=self.recover_max)
                position, pubs = rec.position, rec.publications
                self.metrics.recoveries.labels(str(pubs is not None).lower()).inc()
            else:
                position, pubs = await self._position(ch), None
        except BaseException:
            client._recovering.pop(name, None)
            self._drop(client, name)
            raise
        if ch.epoch is None:
            ch.epoch, ch.offset = position.epoch, position.offset
        return SubscribeResult(position, pubs is not None, pubs or [])

    async def _position(self, ch: _Chan) -> Position:
        """The channel's position, read once for every subscriber that joined before the read
        started (a reconnect storm of thousands on one channel costs a few Redis calls)."""
        fut: asyncio.Future[Position] = asyncio.get_running_loop().create_future()
        ch.joiners.append(fut)
        if not ch.reading:
            ch.reading = True
            task = asyncio.ensure_future(self._read_positions(ch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await fut

    async def _read_positions(self, ch: _Chan) -> None:
        try:
            while ch.joiners:
                batch, ch.joiners = ch.joiners, []
                try:
                    position = await self.broker.position(ch.name)
                except Exception as exc:
                    for fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                else:
                    for fut in batch:
                        if not fut.done():
                            fut.set_result(position)
        finally:
            ch.reading = False

    def release(self, client: Client, channel: Channel, result: SubscribeResult) -> None:
        """After the subscribe reply was sent: deliver what arrived meanwhile, past the
        result's offset, or tell the client to recover if it does not follow on."""
        held = client._recovering.pop(channel.name, None) or []
        if client.closed:
            return
        top = result.position
        last = top.offset
        cache: dict[int, bytes] = {}
        for msg in held:
            if msg.offset is not None:
                if msg.epoch == top.epoch and msg.offset <= last:
                    continue
                if msg.epoch != top.epoch or msg.offset != last + 1:
                    self.metrics.resyncs.labels(kind_of(channel.name)).inc()
                    client.close(CLOSE_INSUFFICIENT_STATE, "insufficient state")
                    return
                last = msg.offset
            body = msg.payload if client.codec is Codec.JSON else _msgpack_of(msg, cache)
            client.send(body, key=(msg.channel, msg.key) if msg.key else None)
        ch = self.channels.get(channel.name)
        if ch is not None and ch.epoch == top.epoch and last > ch.offset:
            # The reply is ahead of what this process has received from the bus: the next
            # publications up to `last` are already known to the client; skip them once.
            if client._skip is None:
                client._skip = {}
            client._skip[channel.name] = (top.epoch, last)

    def unsubscribe(self, client: Client, channel: Channel) -> None:
        client._recovering.pop(channel.name, None)
        self._drop(client, channel.name)

    def _drop(self, client: Client, name: str) -> None:
        ch = self.channels.get(name)
        client.channels.discard(name)
        if ch is None or client not in ch.subs:
            return
        del ch.subs[client]
        if client.codec is Codec.MSGPACK:
            ch.msgpack_subs -= 1
        self.metrics.subscriptions.labels(ch.kind).dec()
        if not ch.subs:
            del self.channels[name]
            self.metrics.channels.set(len(self.channels))
            self._bus(name, self.broker.unsubscribe)

    def tap(self, name: str, on_message: Callable[[Message], None]) -> asyncio.Task[None]:
        """Hand `name`'s publications to `on_message` in this process (a server-internal
        channel no client can name, e.g. revocations); returns the bus subscription's task."""
        self._taps[name] = on_message
        return self._bus(name, self.broker.subscribe)

    def local_count(self, name: str) -> int:
        ch = self.channels.get(name)
        return len(ch.subs) if ch else 0

    def subscribers(self, name: str) -> list[Client]:
        ch = self.channels.get(name)
        return list(ch.subs) if ch else []

    # -- publications ------------------------------------------------------------------

    def deliver(self, msg: Message) -> None:
        """Broker callback: one publication arrived from the bus (never blocks)."""
        ch = self.channels.get(msg.channel)
        if ch is None:
            tap = self._taps.get(msg.channel)
            if tap is not None:
                tap(msg)
            return
        self.metrics.publications_in.labels(ch.kind).inc()
        self.metrics.pubsub_lag.observe(max(0.0, time.time() - msg.ts_ms / 1000))
        if msg.offset is not None:
            if ch.epoch is not None:
                if msg.epoch == ch.epoch and msg.offset <= ch.offset:
                    return  # already seen (delivered twice around a resubscribe)
                if msg.epoch != ch.epoch or msg.offset != ch.offset + 1:
                    self._resync(ch)
            ch.epoch, ch.offset = msg.epoch, msg.offset
        ch.log.append(msg)
        if not ch.active and ch.timer is None:
            self._activate(ch)

    def _activate(self, ch: _Chan) -> None:
        ch.active = True
        self._active.append(ch)
        if not self._step_scheduled:
            self._step_scheduled = True
            asyncio.get_running_loop().call_soon(self._step)

    def _wake(self, ch: _Chan) -> None:
        ch.timer = None
        if not ch.active and ch.end > ch.sweep_end and self.channels.get(ch.name) is ch:
            self._activate(ch)

    def _resync(self, ch: _Chan) -> None:
        """The channel's subscribers cannot follow on: tell them to recover."""
        self.metrics.resyncs.labels(ch.kind).inc()
        log.warning("channel state lost; subscribers must recover", extra={"kind": ch.kind})
        for client in list(ch.subs):
            if ch.name not in client._recovering:
                client.close(CLOSE_INSUFFICIENT_STATE, "insufficient state")

    def idle(self) -> bool:
        """No publication is waiting to be written (tests use it to settle)."""
        return (not self._active and not self._step_scheduled
                and all(ch.timer is None for ch in self.channels.values()))

    def _step(self) -> None:
        """One event-loop turn of fan-out: at most `slice_size` connections or `slice_s` of
        writing, then yield."""
        self._step_scheduled = False
        budget = self.slice_size
        deadline = time.perf_counter() + self.slice_s
        active = self._active
        while budget > 0 and active:
            ch = active[0]
            if ch.sweep is None:
                if ch.end == ch.sweep_end or not ch.subs:
                    # every subscriber has everything: the channel is idle again
                    ch.trim(ch.end)
                    ch.sweep_end = ch.end
                    ch.frames.clear()
                    ch.active = False
                    active.popleft()
                    continue
                wait = ch.next_sweep_at - time.perf_counter()
                if wait > 0:
                    # the last sweep started moments ago: let publications gather, so each
                    # write carries several (CPU per delivery) — subscribers wait at most this
                    ch.active = False
                    active.popleft()
                    ch.timer = asyncio.get_running_loop().call_later(wait, self._wake, ch)
                    continue
                ch.sweep = list(ch.subs)
                ch.cursor = 0
                ch.sweep_end = ch.end
                ch.sweep_started = time.perf_counter()
                ch.own_s = 0.0
            began = time.perf_counter()
            budget -= self._sweep(ch, budget, deadline)
            ended = time.perf_counter()
            ch.own_s += ended - began
            if ch.cursor >= len(ch.sweep):
                ch.sweep = None
                # everyone subscribed when the sweep started now has everything before its
                # start; later joiners started past it
                ch.trim(ch.sweep_end)
                wall = ended - ch.sweep_started
                ch.next_sweep_at = max(ch.sweep_started + self.flush_delay_s,
                                       ended + min(wall - ch.own_s, ch.own_s, self.max_backoff_s))
                self.metrics.fanout_duration.observe(wall)
                active.rotate(-1)
            if ended >= deadline:
                break
        if active and not self._step_scheduled:
            self._step_scheduled = True
            asyncio.get_running_loop().call_soon(self._step)

    def _sweep(self, ch: _Chan, budget: int, deadline: float) -> int:
        """Write to the next `budget` subscribers of the channel's sweep, stopping early at
        `deadline` (perf_counter); returns how many connections it visited."""
        snap = ch.sweep
        assert snap is not None
        i = first = ch.cursor
        stop = min(len(snap), i + budget)
        subs = ch.subs
        name = ch.name
        end = ch.end
        high_water = self.high_water
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
            if client._recovering:
                held = client._recovering.get(name)
                if held is not None:
                    held.extend(ch.log[start - ch.base:end - ch.base])
                    continue
            if client._skip and name in client._skip:
                self._push_skipping(client, ch, ch.log[start - ch.base:end - ch.base])
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
            if not client._queue and client.sink.buffered() < high_water:
                client.sink.write(frame)
                written += 1
                nbytes += len(frame.payload)
            else:
                client.queue_publications(ch, start, end)
        ch.cursor = i
        if delivered:
            self.metrics.publications_out.labels(ch.kind).inc(delivered)
        if written:
            self.metrics.writes.inc(written)
            self.metrics.bytes_out.inc(nbytes)
        return max(1, i - first)

    def _push_skipping(self, client: Client, ch: _Chan, batch: list[Message]) -> None:
        assert client._skip is not None
        epoch, floor = client._skip[ch.name]
        cache: dict[int, bytes] = {}
        for msg in batch:
            if msg.offset is not None and msg.epoch == epoch and msg.offset <= floor:
                continue
            body = msg.payload if client.codec is Codec.JSON else _msgpack_of(msg, cache)
            client.send(body, key=(msg.channel, msg.key) if msg.key else None)
        if ch.epoch != epoch or ch.offset >= floor:
            del client._skip[ch.name]

    def _schedule_retry(self) -> None:
        if not self._retry_scheduled:
            self._retry_scheduled = True
            asyncio.get_running_loop().call_later(0.01, self._retry_blocked)

    def _retry_blocked(self) -> None:
        self._retry_scheduled = False
        still = {c for c in self._blocked if c.drain()}
        self._blocked = still
        if still:
            self._schedule_retry()

    # -- bus reconnects ----------------------------------------------------------------

    def resync_all(self) -> None:
        """Broker callback after the bus reconnected: check each channel's position."""
        for name in list(self.channels):
            task = asyncio.ensure_future(self._check_position(name))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _check_position(self, name: str) -> None:
        try:
            position = await self.broker.position(name)
        except Exception as exc:
            log.warning("position check failed", extra={"error": repr(exc)})
            ch = self.channels.get(name)
            if ch is not None:
                self._resync(ch)
            return
        ch = self.channels.get(name)
        if ch is None or ch.epoch is None:
            return
        if (position.epoch, position.offset) != (ch.epoch, ch.offset):
            self._resync(ch)
            ch.epoch, ch.offset = position.epoch, position.offset

    # -- server-side producers -----------------------------------------------------------

    async def publish(self, channel: str, data: Any, *, key: str | None = None) -> (
        Position | None
    ):
        """Publish `data` (JSON-serialisable) on `channel` through the bus. Durable publications
        return their (epoch, offset); with `key` the publication is latest-value only."""
        position = await self.broker.publish(channel, orjson.dumps(data), key=key)
        self.metrics.published.labels(kind_of(channel)).inc()
        return position

    async def publish_ordered(self, channel: str, order: int, items: list[Any], *,
                              after_gap: bool = False) -> Ordered:
        """Publish `items` on `channel` in one bus round trip (consecutive offsets, nothing
        interleaved) if `order` follows the channel's last order number (see
        `Broker.publish_ordered`); the result says what happened."""
        result = await self.broker.publish_ordered(channel, order,
                                                   [orjson.dumps(d) for d in items],
                                                   after_gap=after_gap)
        if result.status == "published":
            self.metrics.published.labels(kind_of(channel)).inc(len(items))
        return result

    # -- shutdown ------------------------------------------------------------------------

    async def drain(self, within_s: float) -> None:
        """Refuse new connections and close every client with 4000 (reconnect elsewhere),
        spread over `within_s` so they do not all reconnect at once."""
        self.draining = True
        clients = list(self.clients)
        if not clients:
            return
        step = within_s / max(1, len(clients)) if within_s > 0 else 0.0
        for i, client in enumerate(clients):
            client.close(CLOSE_SHUTDOWN, "server shutting down")
            if step and i % 100 == 99:
                await asyncio.sleep(step * 100)

    async def wait_empty(self, within_s: float) -> bool:
        """Wait until every connection has ended; False if some remain after `within_s`."""
        try:
            async with asyncio.timeout(within_s):
                await self._empty.wait()
        except TimeoutError:
            return False
        return True
