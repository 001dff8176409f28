"""One websocket connection as the hub sees it: its frames, its outbox and backpressure.

Backpressure (never awaits a client): a client whose transport buffer is above the hub's
`high_water` gets messages queued in its own outbox instead; latest-value publications (those
with a `key`) replace the queued one with the same key. When the outbox plus the transport
buffer pass `outbox_max_bytes` the client is closed with 4008 (CLOSE_SLOW) and recovers on
reconnect; the hub retries blocked outboxes (`Client.drain`) every 10 ms.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Protocol

from realtime import wire
from realtime.broker import Message
from realtime.channels import Subject, kind_of
from realtime.metrics import HubMetrics
from realtime.wire import Codec

if TYPE_CHECKING:
    from realtime.chanlog import ChannelLog

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


class Host(Protocol):
    """What a client needs of its hub (realtime.hub.Hub)."""

    metrics: HubMetrics
    high_water: int
    outbox_max_bytes: int

    def blocked(self, client: Client) -> None:
        """The client's outbox waits for room in its transport: retry it later."""

    def slow(self, client: Client) -> None:
        """The client is over its outbox limit: close it (4008)."""


class Client:
    """One connection as the hub sees it."""

    __slots__ = ("_latest", "_queued_bytes", "channels", "closed", "codec", "hub", "id",
                 "outbox", "recovering", "sink", "subject")

    _ids = itertools.count(1)

    def __init__(self, hub: Host, sink: Sink, codec: Codec, subject: Subject) -> None:
        self.id = next(Client._ids)
        self.hub = hub
        self.sink = sink
        self.codec = codec
        self.subject = subject
        self.channels: set[str] = set()
        self.closed = False
        self.outbox: list[bytes] = []
        self._queued_bytes = 0
        self._latest: dict[tuple[str, str], int] = {}
        self.recovering: dict[str, list[Message]] = {}

    @property
    def queued_bytes(self) -> int:
        return self._queued_bytes

    def send(self, message: bytes, *, key: tuple[str, str] | None = None) -> None:
        """Queue or write one encoded message (a reply, a push) after everything before it."""
        if self.closed:
            return
        if not self.outbox and self.sink.buffered() < self.hub.high_water:
            self.sink.write(OutFrame(self.codec, message))
            self.hub.metrics.bytes_out.inc(len(message))
            self.hub.metrics.writes.inc()
            return
        self._enqueue(message, key)
        self.hub.blocked(self)

    def queue_publications(self, ch: ChannelLog, start: int, end: int) -> None:
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
                self._queued_bytes += len(message) - len(self.outbox[index])
                self.outbox[index] = message
                self.hub.metrics.outbox_drops.labels(kind_of(key[0])).inc()
                return
            self._latest[key] = len(self.outbox)
        self.outbox.append(message)
        self._queued_bytes += len(message)
        if self._queued_bytes + self.sink.buffered() > self.hub.outbox_max_bytes:
            self.hub.slow(self)

    def drain(self) -> bool:
        """Write the outbox as one frame if the transport has room; True while still blocked."""
        if self.closed:
            return False
        if not self.outbox:
            return False
        if self.sink.buffered() >= self.hub.high_water:
            return True
        payload = self.codec.separator.join(self.outbox)
        self.outbox.clear()
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
        self.outbox.clear()
        self._latest.clear()
        self._queued_bytes = 0
        self.hub.metrics.disconnects.labels(str(code)).inc()
        self.sink.close(code, reason)
