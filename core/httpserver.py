"""uvicorn's httptools protocol with bounded request headers (the only use of its internals).

Neither uvicorn nor httptools (llhttp) bounds request headers: llhttp buffers a header of any
size, accepts any number of them, and a connection may take forever to send them (slowloris).
h11 bounds their size (`h11_max_incomplete_event_size`, answered with 400) but not their count or
time, and is several times slower. So this subclass adds, per request:

- size: the bytes received while a request's headers are incomplete (request line included)
  above `max_header_bytes` → `431 Request Header Fields Too Large` and close (memory held per
  connection is bounded by the limit plus one read);
- count: more than `max_headers` header fields → 431 and close;
- time: a request's headers not complete `header_timeout_s` after its first byte (or after the
  connection opened) → `408 Request Timeout` and close.

Select it with `--http core.httpserver:BoundedHttpToolsProtocol` (`python -m api serve` does);
`create_app` sets the limits from the settings (`configure`). The attributes of uvicorn's class
relied on are listed in `RELIED_ON`; tests/core/test_httpserver.py fails loudly when an upgrade
removes one.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

BOUNDED_HTTP = "core.httpserver:BoundedHttpToolsProtocol"
RELIED_ON = ("connection_made", "connection_lost", "data_received", "on_message_begin",
             "on_header", "on_headers_complete", "send_400_response", "handle_websocket_upgrade")
_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class _Refused(Exception):
    """Stops the parser after a refusal (httptools wraps it; uvicorn's 400 is suppressed)."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    max_header_bytes: ClassVar[int] = 32_768
    max_headers: ClassVar[int] = 100
    header_timeout_s: ClassVar[float] = 10.0

    _pending = 0
    _count = 0
    _awaiting = True
    _refused = False
    _timer: asyncio.TimerHandle | None = None

    @classmethod
    def configure(cls, *, max_header_bytes: int, max_headers: int,
                  header_timeout_s: float) -> None:
        """Set the limits for every connection of this process (from `create_app`)."""
        cls.max_header_bytes = max_header_bytes
        cls.max_headers = max_headers
        cls.header_timeout_s = header_timeout_s

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._awaiting:
            self._pending += len(data)
        super().data_received(data)
        if self._awaiting and not self._refused and self._pending > self.max_header_bytes:
            self._refuse(431)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._pending = self._count = 0
        self._awaiting = True
        self._arm()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count += 1
        if self._count > self.max_headers:
            self._refuse(431)
            raise _Refused()
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._awaiting = False
        self._disarm()
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        if not self._refused:
            super().send_400_response(msg)

    def handle_websocket_upgrade(self) -> None:
        self._disarm()
        super().handle_websocket_upgrade()

    def _arm(self) -> None:
        if self._timer is None:
            self._timer = self.loop.call_later(self.header_timeout_s, self._too_slow)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _too_slow(self) -> None:
        self._timer = None
        if self._awaiting and not self._refused:
            self._refuse(408)

    def _refuse(self, status: int) -> None:
        self._refused = True
        self._disarm()
        if self.transport.is_closing():
            return
        body = _REASONS[status]
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s"
            % (status, _REASONS[status], len(body), body)
        )
        self.transport.close()
