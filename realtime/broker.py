"""The broker interface the hub needs, and an in-memory twin for pure tests.

A broker assigns every durable publication a gapless per-channel offset within the channel's
epoch, keeps bounded history, carries publications between processes and tells each process's
hub about the ones on channels it subscribed to. `RedisBroker` (redis_broker.py) is the real
one; `MemoryBus`/`MemoryBroker` below model several processes sharing one Redis, for tests of
the hub without I/O. The twin never stands in for Redis in integration tests.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from realtime import wire
from realtime.protocol import Position


@dataclass(frozen=True, slots=True)
class Message:
    """One publication as a hub receives it. `payload` is the complete JSON publication message
    (`{"channel", "offset"?, "data"}`); `epoch`/`offset` are None for latest-value ones, which
    carry a conflation `key` instead."""

    channel: str
    epoch: str | None
    offset: int | None
    ts_ms: int
    key: str | None
    payload: bytes


@dataclass(frozen=True, slots=True)
class Recovery:
    """The channel's position now, and the publications after `since` (JSON payloads in offset
    order), or None when they cannot all be given (other epoch, trimmed, too many)."""

    position: Position
    publications: list[bytes] | None


OnMessage = Callable[[Message], None]
OnResync = Callable[[], None]


class Broker(Protocol):
    def attach(self, on_message: OnMessage, on_resync: OnResync) -> None:
        """Register the hub's callbacks: each received message, and "the bus reconnected; check
        every subscribed channel's position" (messages may have been lost meanwhile)."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def publish(self, channel: str, data_json: bytes, *, key: str | None = None) -> (
        Position | None
    ):
        """Publish encoded `data_json` on `channel`. Durable (no `key`): returns its position.
        With `key`: latest-value only, no offset, no history; returns None."""

    async def publish_many(self, channel: str, data_json: list[bytes]) -> list[Position]:
        """Publish several durable publications on `channel` at once: consecutive offsets in
        list order, nothing else interleaved; one round trip to the bus."""

    async def publish_ordered(self, channel: str, order: int, data_json: list[bytes], *,
                              after_gap: bool = False) -> Ordered:
        """`publish_many`, but only if `order` follows the last order number published on the
        channel (or the channel has none: a new channel or epoch). Otherwise nothing is
        published and the result says `duplicate` (order already published) or `gap` (orders
        between the last one and this are missing), with the last order number. A producer
        numbers its announcements and fills gaps from its own record (see auctions);
        `after_gap=True` publishes over a gap it could not fill."""

    async def subscribe(self, channel: str) -> None:
        """Receive `channel`'s messages from now on; returns once the subscription is active."""

    async def unsubscribe(self, channel: str) -> None: ...

    async def position(self, channel: str) -> Position:
        """The channel's current epoch and last offset (creating the epoch if there is none)."""

    async def recover(self, channel: str, since: Position, *, limit: int) -> Recovery: ...


@dataclass(frozen=True, slots=True)
class Ordered:
    """The result of `publish_ordered`."""

    status: str  # "published" | "duplicate" | "gap"
    positions: list[Position]
    last_order: int  # the channel's last published order number after the call


def new_epoch() -> str:
    return uuid.uuid4().hex[:12]


@dataclass
class _Stream:
    epoch: str
    offset: int = 0
    order: int = 0  # last order number published (publish_ordered)
    history: list[tuple[int, bytes]] = field(default_factory=list)


class MemoryBus:
    """What Redis holds for a deployment, in memory: positions, history, subscribers."""

    def __init__(self, *, history_size: int = 300) -> None:
        self.history_size = history_size
        self.streams: dict[str, _Stream] = {}
        self.brokers: list[MemoryBroker] = []

    def flush(self) -> None:
        """Lose everything, like a Redis restart without persistence."""
        self.streams.clear()

    def stream(self, channel: str) -> _Stream:
        st = self.streams.get(channel)
        if st is None:
            st = self.streams[channel] = _Stream(new_epoch())
        return st


class MemoryBroker:
    """One process's view of a MemoryBus. Delivery happens on a later loop iteration."""

    _ids = itertools.count()

    def __init__(self, bus: MemoryBus) -> None:
        self.bus = bus
        self.channels: set[str] = set()
        self._on_message: OnMessage | None = None
        self._on_resync: OnResync | None = None
        bus.brokers.append(self)

    def attach(self, on_message: OnMessage, on_resync: OnResync) -> None:
        self._on_message, self._on_resync = on_message, on_resync

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        if self in self.bus.brokers:
            self.bus.brokers.remove(self)

    async def publish(self, channel: str, data_json: bytes, *, key: str | None = None) -> (
        Position | None
    ):
        ts = int(time.time() * 1000)
        if key is not None:
            payload = wire.publication_json(channel, None, data_json)
            msg = Message(channel, None, None, ts, key, payload)
            self._fan(msg)
            return None
        st = self.bus.stream(channel)
        st.offset += 1
        payload = wire.publication_json(channel, st.offset, data_json)
        st.history.append((st.offset, payload))
        del st.history[: max(0, len(st.history) - self.bus.history_size)]
        self._fan(Message(channel, st.epoch, st.offset, ts, None, payload))
        return Position(st.epoch, st.offset)

    async def publish_many(self, channel: str, data_json: list[bytes]) -> list[Position]:
        out = []
        for data in data_json:
            position = await self.publish(channel, data)
            assert position is not None
            out.append(position)
        return out

    async def publish_ordered(self, channel: str, order: int, data_json: list[bytes], *,
                              after_gap: bool = False) -> Ordered:
        st = self.bus.stream(channel)
        if st.order:
            if order <= st.order:
                return Ordered("duplicate", [], st.order)
            if order > st.order + 1 and not after_gap:
                return Ordered("gap", [], st.order)
        st.order = order
        return Ordered("published", await self.publish_many(channel, data_json), order)

    def _fan(self, msg: Message) -> None:
        loop = asyncio.get_running_loop()
        for broker in self.bus.brokers:
            if msg.channel in broker.channels and broker._on_message is not None:
                loop.call_soon(broker._on_message, msg)

    async def subscribe(self, channel: str) -> None:
        self.channels.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self.channels.discard(channel)

    async def position(self, channel: str) -> Position:
        st = self.bus.stream(channel)
        return Position(st.epoch, st.offset)

    async def recover(self, channel: str, since: Position, *, limit: int) -> Recovery:
        st = self.bus.stream(channel)
        pos = Position(st.epoch, st.offset)
        missing = st.offset - since.offset
        if since.epoch != st.epoch or missing < 0 or missing > limit:
            return Recovery(pos, None)
        pubs = [p for off, p in st.history if off > since.offset]
        if len(pubs) != missing:
            return Recovery(pos, None)
        return Recovery(pos, pubs)
