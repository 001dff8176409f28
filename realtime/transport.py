"""Sinks: how a client's frames reach its socket.

`TransportSink` is the fast path for uvicorn's `websockets-sansio` protocol (the default
`--ws auto` implementation): complete, pre-built frames go straight to the asyncio transport —
one `transport.write` per flush per client, the same frame bytes for every subscriber, and the
transport's buffer size is the backpressure signal. It only does what the protocol object
itself does when the ASGI app sends (build frame, write, track close), and only while the
connection is open; we measured the ASGI send path at about twice the cost per write.

`AsgiSink` works under any ASGI server: a writer task sends queued payloads through the ASGI
`send` callable. `make_sink` picks the fast path when the outermost ASGI `send` (recorded by
`WebsocketShortcut` in `scope["souk.raw_send"]`) belongs to a uvicorn sansio protocol.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from realtime.hub import OutFrame, Sink
from realtime.wire import Codec

log = logging.getLogger("souk.realtime")

CLOSE_TIMEOUT_S = 10.0
ABORT_AFTER_S = 30.0

try:  # the fast path needs uvicorn's sansio protocol; without it AsgiSink serves
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
except ImportError:  # pragma: no cover
    WebSocketsSansIOProtocol = None  # type: ignore[assignment,misc]


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
        `--ws realtime.transport:LeanWebSocketsProtocol` (`python -m api serve` does)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.queue = ReceiveQueue()  # type: ignore[assignment]
            self.writable = Flag(True)  # type: ignore[assignment]


LEAN_WS = "realtime.transport:LeanWebSocketsProtocol"


class WebsocketShortcut:
    """Serves websocket requests for `path` directly, ahead of the rest of the middleware
    stack and the router: every open connection keeps one coroutine stack alive, so fewer
    frames mean less memory per connection, and the endpoint sees the server's own `send`
    (needed to find the transport). Put it first in the middleware list; the matching
    WebSocketRoute stays in the routing table for the OpenAPI document."""

    def __init__(self, app: ASGIApp, *, path: str,
                 endpoint: Callable[[WebSocket], Awaitable[None]]) -> None:
        self.app = app
        self.path = path
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == self.path:
            scope["souk.raw_send"] = send
            await self.endpoint(WebSocket(scope, receive, send))
            return
        await self.app(scope, receive, send)


class TransportSink:
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


class AsgiSink:
    """Portable sink: a task per connection awaits the ASGI send."""

    def __init__(self, websocket: WebSocket, codec: Codec) -> None:
        self._ws = websocket
        self._text = codec is Codec.JSON
        self._queue: collections.deque[bytes] = collections.deque()
        self._bytes = 0
        self._wake = asyncio.Event()
        self._close: tuple[int, str] | None = None
        self._task = asyncio.ensure_future(self._run())

    def write(self, frame: OutFrame) -> None:
        if self._close is not None:
            return
        self._queue.append(frame.payload)
        self._bytes += len(frame.payload)
        self._wake.set()

    def buffered(self) -> int:
        return self._bytes

    def close(self, code: int, reason: str) -> None:
        if self._close is None:
            self._close = (code, reason)
            self._queue.clear()
            self._bytes = 0
            self._wake.set()

    async def _run(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._queue:
                    payload = self._queue.popleft()
                    self._bytes -= len(payload)
                    if self._text:
                        await self._ws.send_text(payload.decode())
                    else:
                        await self._ws.send_bytes(payload)
                if self._close is not None:
                    await self._ws.close(*self._close)
                    return
        except Exception as exc:  # the connection went away; the endpoint cleans up
            log.debug("asgi sink stopped", extra={"error": repr(exc)})

    def stop(self) -> None:
        self._task.cancel()


def make_sink(websocket: WebSocket, codec: Codec) -> Sink:
    raw = websocket.scope.get("souk.raw_send")
    proto = getattr(raw, "__self__", None)
    if WebSocketsSansIOProtocol is not None and isinstance(proto, WebSocketsSansIOProtocol):
        return TransportSink(proto)
    return AsgiSink(websocket, codec)
