"""Sinks: how a client's frames reach its socket.

`TransportSink` (in uvicorn_ws.py, where every use of uvicorn's internals is fenced) is the
fast path for uvicorn's `websockets-sansio` protocol (the default `--ws auto` implementation):
complete, pre-built frames go straight to the asyncio transport — one `transport.write` per
flush per client, the same frame bytes for every subscriber, and the transport's buffer size is
the backpressure signal. It only does what the protocol object itself does when the ASGI app
sends (build frame, write, track close), and only while the connection is open; we measured
the ASGI send path at about twice the cost per write.

`AsgiSink` works under any ASGI server: a writer task sends queued payloads through the ASGI
`send` callable. `make_sink` picks the fast path when the outermost ASGI `send` (recorded by
`WebsocketShortcut` in `scope["souk.raw_send"]`) belongs to a uvicorn sansio protocol that has
every attribute the fast path relies on; it logs why when not, and counts each path.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from realtime import uvicorn_ws
from realtime.client import OutFrame, Sink
from realtime.metrics import HubMetrics
from realtime.wire import Codec

log = logging.getLogger("souk.realtime")

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


def make_sink(websocket: WebSocket, codec: Codec, metrics: HubMetrics | None = None) -> Sink:
    """The fast `TransportSink` when the connection is served by uvicorn's sansio protocol with
    every attribute it relies on (uvicorn_ws.py), else `AsgiSink`; the reason the fast path is
    not used is logged once, and each connection's path is counted."""
    proto = uvicorn_ws.sansio_protocol(websocket.scope.get("souk.raw_send"))
    sink: Sink
    if proto is not None and not (gone := uvicorn_ws.missing(proto)):
        sink, path = uvicorn_ws.TransportSink(proto), "transport"
    else:
        if proto is not None:
            _fallback_once(f"uvicorn's protocol lacks {', '.join(gone)} (uvicorn "
                           f"{uvicorn_ws.VERSION}; tested {uvicorn_ws.TESTED}.x)")
        elif uvicorn_ws.UNAVAILABLE is not None:
            _fallback_once(uvicorn_ws.UNAVAILABLE)
        sink, path = AsgiSink(websocket, codec), "asgi"
    if metrics is not None:
        metrics.sinks.labels(path).inc()
    return sink


_warned: set[str] = set()


def _fallback_once(reason: str) -> None:
    if reason not in _warned:
        _warned.add(reason)
        log.warning("websocket fast path off; serving through the ASGI send path: %s", reason)
