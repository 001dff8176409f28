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

Backpressure (never awaits a client; 4008 over the outbox limit): see client.py. The per-channel
log and the sweep's writing: chanlog.py.

Joining: a new subscriber takes its place at the log's end when it registers, and its result
(the channel's position, or what it missed after `since`) is read from the bus after that. Until
`release` (called once the reply was sent) sweeps hold its share of the log; `release` then
writes what it holds and what the log still has for it, past the result's offset, so each offset
reaches it exactly once and in order (a gap: 4010). A result ahead of what the bus has brought
this process is the subscriber's floor in the channel: the bus's copies up to it are skipped for
that subscriber, and the next offset must follow on. The channel's own (epoch, offset) is only
ever what the bus delivered (or a position check after a reconnect).

Gaps: offsets on a channel must arrive as offset+1 within one epoch. Anything else (a new epoch
after Redis lost the channel, a lost pub/sub message, a bus reconnect that missed traffic) makes
the hub close that channel's subscribers with 4010 so they resubscribe with `since` and learn
`recovered: false` (or get what they missed).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson

from realtime.broker import Broker, Message, Ordered
from realtime.chanlog import BusOps, ChannelLog, SubscribeResult, msgpack_of
from realtime.channels import Channel, Subject, kind_of
from realtime.client import (
    CLOSE_BAD_TOKEN,
    CLOSE_FLOOD,
    CLOSE_FORBIDDEN,
    CLOSE_INSUFFICIENT_STATE,
    CLOSE_SHUTDOWN,
    CLOSE_SLOW,
    Client,
    OutFrame,
    Sink,
)
from realtime.metrics import HubMetrics
from realtime.protocol import Position
from realtime.wire import Codec

# The hub's surface, as before the split into client.py / chanlog.py (helpers import these
# names from here).
__all__ = [
    "CLOSE_BAD_TOKEN", "CLOSE_FLOOD", "CLOSE_FORBIDDEN", "CLOSE_INSUFFICIENT_STATE",
    "CLOSE_SHUTDOWN", "CLOSE_SLOW", "Client", "Hub", "OutFrame", "Sink", "SubscribeResult",
]

log = logging.getLogger("souk.hub")


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
        self.channels: dict[str, ChannelLog] = {}
        self.clients: set[Client] = set()
        self.draining = False
        self._empty = asyncio.Event()
        self._empty.set()
        self._active: collections.deque[ChannelLog] = collections.deque()  # channels to sweep
        self._blocked: set[Client] = set()
        self._step_scheduled = False
        self._retry_scheduled = False
        self._bus = BusOps()
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

    async def subscribe(
        self, client: Client, channel: Channel, since: Position | None
    ) -> SubscribeResult:
        """Subscribe `client`; live publications are held back until the caller has sent the
        result and called `release(client, channel, result)`. Raises broker errors (the
        subscription is then undone)."""
        name = channel.name
        ch = self.channels.get(name)
        if ch is None:
            ch = self.channels[name] = ChannelLog(name, self._bus.run(name, self.broker.subscribe))
            self.metrics.channels.set(len(self.channels))
        client.recovering[name] = []
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
                position, pubs = await ch.position(self.broker), None
        except BaseException:
            client.recovering.pop(name, None)
            self._drop(client, name)
            raise
        # The channel's (epoch, offset) stays what the bus has delivered here: a result read
        # ahead of it would make `deliver` drop publications other joiners still need.
        return SubscribeResult(position, pubs is not None, pubs or [])

    def release(self, client: Client, channel: Channel, result: SubscribeResult) -> None:
        """After the subscribe reply was sent: from here on the client follows on from the
        result's offset, each offset exactly once. What reached this process since the client
        registered (held by sweeps, or still in the log, unswept) is written past that offset;
        a gap makes the client recover (4010). A result ahead of what the bus has delivered
        here becomes the client's floor in the channel (`ChannelLog.floors`)."""
        name = channel.name
        held = client.recovering.pop(name, None) or []
        ch = self.channels.get(name)
        if client.closed or ch is None or client not in ch.subs:
            return
        # The client's place in the log was taken when it registered, before the result was
        # read: the log from there may hold offsets the result already gave it.
        start = ch.subs[client]
        ch.subs[client] = ch.end
        pending = held + ch.log[max(0, start - ch.base):]
        top = result.position
        last = top.offset
        cache: dict[int, bytes] = {}
        for msg in pending:
            if msg.offset is not None:
                if msg.epoch == top.epoch and msg.offset <= last:
                    continue
                if msg.epoch != top.epoch or msg.offset != last + 1:
                    self._lost(client, ch)
                    return
                last = msg.offset
            body = msg.payload if client.codec is Codec.JSON else msgpack_of(msg, cache)
            client.send(body, key=(msg.channel, msg.key) if msg.key else None)
        if ch.epoch is None or (ch.epoch == top.epoch and last > ch.offset):
            # The bus has not brought this process the result's offset yet: skip up to it
            # once it does (and check that what comes next follows on).
            ch.floors[client] = top if last == top.offset else Position(top.epoch, last)
        elif ch.epoch == top.epoch and last < ch.offset:
            # The channel moved on without this client seeing it (a position check after a
            # bus reconnect set it ahead of the log): it must recover.
            self._lost(client, ch)

    def _lost(self, client: Client, ch: ChannelLog) -> None:
        self.metrics.resyncs.labels(ch.kind).inc()
        client.close(CLOSE_INSUFFICIENT_STATE, "insufficient state")

    def unsubscribe(self, client: Client, channel: Channel) -> None:
        client.recovering.pop(channel.name, None)
        self._drop(client, channel.name)

    def _drop(self, client: Client, name: str) -> None:
        ch = self.channels.get(name)
        client.channels.discard(name)
        if ch is None or client not in ch.subs:
            return
        del ch.subs[client]
        if ch.floors:
            ch.floors.pop(client, None)
        if client.codec is Codec.MSGPACK:
            ch.msgpack_subs -= 1
        self.metrics.subscriptions.labels(ch.kind).dec()
        if not ch.subs:
            del self.channels[name]
            self.metrics.channels.set(len(self.channels))
            self._bus.run(name, self.broker.unsubscribe)

    def tap(self, name: str, on_message: Callable[[Message], None]) -> asyncio.Task[None]:
        """Hand `name`'s publications to `on_message` in this process (a server-internal
        channel no client can name, e.g. revocations); returns the bus subscription's task."""
        self._taps[name] = on_message
        return self._bus.run(name, self.broker.subscribe)

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

    def _activate(self, ch: ChannelLog) -> None:
        ch.active = True
        self._active.append(ch)
        if not self._step_scheduled:
            self._step_scheduled = True
            asyncio.get_running_loop().call_soon(self._step)

    def _wake(self, ch: ChannelLog) -> None:
        ch.timer = None
        if not ch.active and ch.end > ch.sweep_end and self.channels.get(ch.name) is ch:
            self._activate(ch)

    def _resync(self, ch: ChannelLog) -> None:
        """The channel's subscribers cannot follow on: tell them to recover."""
        self.metrics.resyncs.labels(ch.kind).inc()
        log.warning("channel state lost; subscribers must recover", extra={"kind": ch.kind})
        for client in list(ch.subs):
            if ch.name not in client.recovering:
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
            budget -= ch.write_slice(budget, deadline, self.high_water, self.metrics)
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
