"""Every use of uvicorn's internals, fenced: its websockets-sansio protocol object.

Two things here depend on attributes uvicorn does not document:
- `LeanWebSocketsProtocol` subclasses `WebSocketsSansIOProtocol` and replaces its receive
  `queue` and `writable` event with lighter objects (~3.5 KB less per idle connection);
- `TransportSink` writes pre-built frames straight to the protocol's transport and closes the
  way the protocol does for an app-initiated close (its `conn`, `close_sent`, `queue`,
  `read_paused`, `close_timer`, ...).

`RELIED_ON` lists those attributes; `missing(proto)` says which a live protocol object lacks.
tests/realtime/test_uvicorn_ws.py builds the protocol and runs a real handshake through it and
fails on any uvicorn that changed them: pyproject.toml pins the range that test passed with
(`TESTED`). At run time `make_sink` (transport.py) uses the fast path only when the import
worked and the connection's protocol has every attribute, and otherwise logs why (once) and
serves through the portable ASGI sink; the path each connection took is counted
(`souk_ws_sinks_total{path}`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from realtime.client import OutFrame

log = logging.getLogger("souk.realtime")

TESTED = "0.55"  # uvicorn minor version(s) the fast path was tested with (pyproject pins it)
CLOSE_TIMEOUT_S = 10.0
ABORT_AFTER_S = 30.0

# Attributes of a connected WebSocketsSansIOProtocol that this module reads or writes.
RELIED_ON: tuple[str, ...] = (
    "transport",  # asyncio.Transport: frames are written to it
    "request", "response",  # the handshake's objects, dropped after it (memory)
    "conn",  # websockets.ServerProtocol: send_close(), data_to_send()
    "close_sent", "disconnected",  # the protocol's close state, read and set
    "queue",  # receive queue: replaced (put_nowait, get, empty, qsize); a disconnect is put
    "writable",  # flow-control event: replaced (set, clear, is_set, wait)
    "read_paused",  # resumed after a close so the peer's close reply is read
    "close_timer",  # the close timeout handle the protocol cancels on connection_lost
)
# Methods of its `conn` (websockets' sans-I/O ServerProtocol) used to close.
CONN_METHODS: tuple[str, ...] = ("send_close", "data_to_send")

try:
    import uvicorn
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
except ImportError as exc:  # pragma: no cover - uvicorn[standard] is a dependency
    WebSocketsSansIOProtocol = None  # type: ignore[assignment,misc]
    UNAVAILABLE: str | None = f"uvicorn's websockets-sansio protocol cannot be imported: {exc}"
    VERSION = ""
else:
    UNAVAILABLE = None
    VERSION = uvicorn.__version__
    if not VERSION.startswith(TESTED + "."):
        log.warning("uvicorn %s is not the version the websocket fast path was tested with "
                    "(%s.x); each connection's protocol is checked before it is used",
                    VERSION, TESTED)


def missing(proto: Any) -> list[str]:
    """The relied-on attributes `proto` (a connected protocol object) lacks; [] when all are
    there."""
    out = [name for name in RELIED_ON if not hasattr(proto, name)]
    conn = getattr(proto, "conn", None)
    out += [f"conn.{m}" for m in CONN_METHODS if conn is not None and not hasattr(conn, m)]
    return out


def sansio_protocol(send: Any) -> Any | None:
    """The uvicorn sansio protocol object behind an ASGI `send` callable, or None."""
    proto = getattr(send, "__self__", None)
    if WebSocketsSansIOProtocol is not None and isinstance(proto, WebSocketsSansIOProtocol):
        return proto
    return None


class ReceiveQueue:
    """What uvicorn's websocket protocol uses of its receive queue (`put_nowait`, `get`,
    `empty`, `qsize`), for its one reader. An `asyncio.Queue` carries three deques and an Event
    (about 3 KB per idle connection, measured with tracemalloc); this holds a list and at most
    one waiting future."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._waiter: asyncio.Future[Any] | None = None

    def put_nowait(self, item: Any) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(item)
                return
        self._items.append(item)

    async def get(self) -> Any:
        if self._items:
            return self._items.pop(0)
        if self._waiter is not None and not self._waiter.done():
            raise RuntimeError("ReceiveQueue has one reader")
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            return await self._waiter
        finally:
            self._waiter = None

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)


class Flag:
    """What uvicorn's protocol uses of its `writable` Event (`set`, `clear`, `is_set`,
    `wait`), without a deque of waiters on every idle connection."""

    __slots__ = ("_set", "_waiters")

    def __init__(self, value: bool = False) -> None:
        self._set = value
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        waiters, self._waiters = self._waiters, None
        for fut in waiters or ():
            if not fut.done():
                fut.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if self._set:
            return True
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(fut)
        await fut
        return True


if WebSocketsSansIOProtocol is not None:

    class LeanWebSocketsProtocol(WebSocketsSansIOProtocol):
        """uvicorn's websockets-sansio protocol with lighter per-connection state (its receive
        queue and `writable` event replaced by `ReceiveQueue` and `Flag`, ~3.5 KB less per
        idle connection). Select it with uvicorn's `ws` option:
        `--ws realtime.uvicorn_ws:LeanWebSocketsProtocol` (`python -m api serve` does)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.queue = ReceiveQueue()  # type: ignore[assignment]
            self.writable = Flag(True)  # type: ignore[assignment]


LEAN_WS = "realtime.uvicorn_ws:LeanWebSocketsProtocol"


class TransportSink:
    """The fast sink: complete, pre-built frames straight to the protocol's transport (see
    transport.py). Build it only for a protocol with nothing `missing`."""

    __slots__ = ("_proto", "_transport")

    def __init__(self, proto: Any) -> None:
        self._proto = proto
        self._transport: asyncio.Transport = proto.transport
        # The handshake is over: drop the request/response objects the protocol keeps for no
        # further use. The websockets parser generator keeps the request alive in a local
        # variable for the connection's lifetime, so empty its headers too (about 2.5 KB per
        # idle connection, measured with tracemalloc).
        request = proto.request
        if request is not None:
            with contextlib.suppress(Exception):
                request.headers.clear()
        proto.request = proto.response = None

    def write(self, frame: OutFrame) -> None:
        p = self._proto
        if p.close_sent or p.disconnected:
            return
        self._transport.write(frame.raw)

    def buffered(self) -> int:
        return self._transport.get_write_buffer_size()

    def close(self, code: int, reason: str) -> None:
        p = self._proto
        if p.close_sent or p.disconnected:
            return
        with contextlib.suppress(Exception):
            p.conn.send_close(code, reason)
            self._transport.write(b"".join(p.conn.data_to_send()))
        p.close_sent = True
        # Wake the endpoint's receive loop the way the protocol does for app-initiated closes,
        # and keep reading so the peer's close reply (which ends the connection) gets in.
        p.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        if p.read_paused:
            p.read_paused = False
            self._transport.resume_reading()
        loop = asyncio.get_running_loop()
        transport = self._transport

        def give_up() -> None:
            transport.close()  # flushes what is buffered, then closes
            # A peer that never reads would keep the socket forever: cut it after a while.
            loop.call_later(ABORT_AFTER_S, transport.abort)

        p.close_timer = loop.call_later(CLOSE_TIMEOUT_S, give_up)
