"""Subscriber connections on raw asyncio protocols (one small object per connection, no task).

`Fleet.open()` opens N connections, each subscribing to one channel, and waits until every
subscription is confirmed. After that the connections only receive; every text frame is handed
to the shared `Recorder`, which does the accounting (see stats.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import cast
from urllib.parse import urlsplit

import orjson

from loadtests.fanout import wsframes as wf
from loadtests.fanout.stats import ConnTracker, Msg, Recorder

SUBPROTOCOL = "souk.v1.json"


class Endpoint:
    """Where and how to connect: `ws://host:port/path` plus extra upgrade headers."""

    def __init__(self, url: str, *, headers: dict[str, str] | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme != "ws" or parts.hostname is None:
            raise ValueError(f"need a ws:// URL, got {url!r}")
        if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the benchmark targets the loopback interface only")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.path = parts.path or "/"
        if parts.query:
            self.path += "?" + parts.query
        self.headers = headers or {}


class Connection(asyncio.Protocol):
    """A client websocket on a raw asyncio protocol (one small object per connection, no task):
    the upgrade request, its answer, then frames for `_dispatch`. Subclasses say what happens
    once open (`_opened`), with frames (`_dispatch`) and on failure (`_fail`)."""

    subprotocol: str | None = SUBPROTOCOL

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.key = wf.new_key()
        self.transport: asyncio.Transport | None = None
        self.parser: wf.FrameParser | None = None
        self.handshake_buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = tr = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        ep = self.endpoint
        tr.write(
            wf.handshake_request(
                ep.host, ep.port, ep.path, self.key, subprotocol=self.subprotocol,
                headers=ep.headers,
            )
        )

    def data_received(self, data: bytes) -> None:
        if self.parser is None:
            try:
                done, rest = wf.parse_handshake_response(
                    self.handshake_buf + data, self.key, subprotocol=self.subprotocol
                )
            except wf.ProtocolError as exc:
                self._fail(str(exc))
                return
            if not done:
                self.handshake_buf = rest
                return
            self.handshake_buf = b""
            self.parser = wf.FrameParser()
            self._opened()
            if not rest:
                return
            data = rest
        try:
            frames = self.parser.feed(data)
        except wf.ProtocolError as exc:
            self._fail(str(exc))
            return
        self._dispatch(frames, time.time_ns())

    def _opened(self) -> None:
        raise NotImplementedError

    def _dispatch(self, frames: list[tuple[int, bytes]], now: int) -> None:
        raise NotImplementedError

    def _fail(self, reason: str) -> None:
        raise NotImplementedError

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _echo_close(self, payload: bytes) -> None:
        self._write(wf.client_frame(wf.OP_CLOSE, payload[:2]))
        if self.transport is not None:
            self.transport.close()

    def close(self) -> None:
        if self.transport is not None:
            self._write(wf.client_frame(wf.OP_CLOSE, (1000).to_bytes(2, "big")))
            self.transport.close()


class Subscriber(Connection):
    """One websocket connection subscribed to one channel (souk.v1.json protocol)."""

    def __init__(self, fleet: Fleet, endpoint: Endpoint) -> None:
        super().__init__(endpoint)
        self.fleet = fleet
        self.tracker = ConnTracker()
        self.subscribed: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.binary_frames = 0
        self.errors: list[str] = []

    def _dispatch(self, frames: list[tuple[int, bytes]], now: int) -> None:
        for opcode, payload in frames:
            if opcode == wf.OP_TEXT:
                try:
                    self._on_text(payload, now)
                except ValueError as exc:  # msgspec errors derive from ValueError
                    self._fail(f"undecodable frame: {exc}")
                    return
            elif opcode == wf.OP_PING:
                self._write(wf.client_frame(wf.OP_PONG, payload))
            elif opcode == wf.OP_CLOSE:
                self.tracker.close_code = wf.close_code(payload) or 1005
                self._echo_close(payload)
            elif opcode == wf.OP_BINARY:
                self.binary_frames += 1

    def connection_lost(self, exc: Exception | None) -> None:
        if self.tracker.close_code is None:
            self.tracker.close_code = 1006
        if not self.subscribed.done():
            self.subscribed.set_exception(ConnectionError(f"connection lost: {exc}"))
        self.transport = None

    # the application protocol -----------------------------------------------------------------
    def _opened(self) -> None:
        self.send_json({"id": 1, "op": "subscribe", "channel": self.fleet.channel})

    def _on_text(self, payload: bytes, now: int) -> None:
        for msg in self.fleet.recorder.on_frame(self.tracker, payload, now):
            self._on_reply(msg)

    # helpers ---------------------------------------------------------------------------------
    def send_json(self, obj: object) -> None:
        self._write(wf.client_frame(wf.OP_TEXT, orjson.dumps(obj)))

    def _on_reply(self, msg: Msg) -> None:
        if msg.id == 1 and not self.subscribed.done():
            if bytes(msg.error):
                why = bytes(msg.error).decode("utf-8", "replace")
                self.subscribed.set_exception(RuntimeError(f"subscribe refused: {why}"))
            else:
                self.subscribed.set_result(bytes(msg.result))
            return
        hook = self.fleet.on_other
        if hook is not None:
            hook(self, msg)

    def _fail(self, reason: str) -> None:
        self.errors.append(reason)
        if not self.subscribed.done():
            self.subscribed.set_exception(ConnectionError(reason))
        if self.transport is not None:
            self.transport.abort()


class SocketIOSubscriber(Subscriber):
    """The same subscriber speaking Socket.IO 4 over the engine.io websocket transport (for the
    Socket.IO baseline): open packet `0{..}` -> `40` (connect to "/") -> `40{..}` ->
    `420["subscribe",{"channel"}]` -> ack `430[{..}]`; publications arrive as
    `42["pub",{"channel","offset","data"}]`; engine.io pings `2` are answered `3`."""

    subprotocol = None
    PUB_PREFIX = b'42["pub",'

    def _opened(self) -> None:
        return None  # the server speaks first (engine.io open packet)

    def _on_text(self, payload: bytes, now: int) -> None:
        if payload.startswith(self.PUB_PREFIX):
            self.fleet.recorder.on_frame(self.tracker, payload[len(self.PUB_PREFIX) : -1], now)
        elif payload == b"2":
            self._write(wf.client_frame(wf.OP_TEXT, b"3"))
        elif payload.startswith(b"0"):
            self._write(wf.client_frame(wf.OP_TEXT, b"40"))
        elif payload.startswith(b"40"):
            cmd = b'420["subscribe",' + orjson.dumps({"channel": self.fleet.channel}) + b"]"
            self._write(wf.client_frame(wf.OP_TEXT, cmd))
        elif payload.startswith(b"430") and not self.subscribed.done():
            self.subscribed.set_result(payload[3:])
        elif payload.startswith((b"44", b"1")):
            self._fail(f"socket.io refused: {payload[:200]!r}")


class Fleet:
    """N subscribers to one channel, spread round-robin over one or more server endpoints."""

    def __init__(
        self, endpoints: list[Endpoint], channel: str, recorder: Recorder, *,
        kind: type[Subscriber] = Subscriber,
    ) -> None:
        if not endpoints:
            raise ValueError("need at least one endpoint")
        self.endpoints = endpoints
        self.channel = channel
        self.recorder = recorder
        self.kind = kind
        self.subscribers: list[Subscriber] = []
        self.on_other: Callable[[Subscriber, Msg], None] | None = None
        self.first_subscribe_result: bytes = b""

    @property
    def trackers(self) -> list[ConnTracker]:
        return [s.tracker for s in self.subscribers]

    async def open(
        self, n: int, *, concurrency: int = 200, timeout_s: float = 120.0,
        progress: Callable[[int], None] | None = None,
    ) -> float:
        """Open `n` subscribed connections; return the seconds it took. Raises on the first
        connection that fails to connect or subscribe, or after `timeout_s`."""
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(concurrency)
        started = time.perf_counter()
        done = 0

        async def one(i: int) -> None:
            ep = self.endpoints[i % len(self.endpoints)]
            async with gate:
                _, proto = await loop.create_connection(
                    lambda: self.kind(self, ep), ep.host, ep.port
                )
                self.subscribers.append(proto)
                result = await proto.subscribed
                if not self.first_subscribe_result:
                    self.first_subscribe_result = result
            nonlocal done
            done += 1
            if progress is not None and done % 1000 == 0:
                progress(done)

        await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(n))), timeout_s)
        return time.perf_counter() - started

    def close(self) -> None:
        for sub in self.subscribers:
            sub.close()

    def errors(self) -> list[str]:
        return [e for s in self.subscribers for e in s.errors]


class Commander(Connection):
    """A connection that sends commands and awaits their replies (`await request(obj)`): the
    bid benchmark's bidders. The `websockets` client costs several times the CPU per message,
    and the generators share the box with the servers they measure. Publications and replies
    to nobody are ignored."""

    def __init__(self, endpoint: Endpoint) -> None:
        super().__init__(endpoint)
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting: dict[int, asyncio.Future[dict[str, object]]] = {}
        self.next_id = 0

    @classmethod
    async def connect(cls, endpoint: Endpoint, *, timeout_s: float = 30) -> Commander:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(lambda: cls(endpoint), endpoint.host,
                                               endpoint.port)
        async with asyncio.timeout(timeout_s):
            await conn.opened
        return conn

    def _opened(self) -> None:
        self.opened.set_result(None)

    def _dispatch(self, frames: list[tuple[int, bytes]], now: int) -> None:
        for opcode, payload in frames:
            if opcode == wf.OP_TEXT:
                try:
                    replies = [orjson.loads(line) for line in payload.split(b"\n")]
                except ValueError as exc:  # orjson errors derive from ValueError
                    self._fail(f"undecodable frame: {exc}")
                    return
                for msg in replies:
                    future = self.waiting.pop(msg.get("id"), None)
                    if future is not None and not future.done():
                        future.set_result(msg)
            elif opcode == wf.OP_PING:
                self._write(wf.client_frame(wf.OP_PONG, payload))
            elif opcode == wf.OP_CLOSE:
                self._echo_close(payload)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._fail(f"connection lost: {exc}")

    async def request(self, command: dict[str, object]) -> dict[str, object]:
        """Send `command` with the next id; the server's reply (`result` or `error`)."""
        if self.transport is None:
            raise ConnectionError("not connected")
        self.next_id += 1
        future: asyncio.Future[dict[str, object]] = asyncio.get_running_loop().create_future()
        self.waiting[self.next_id] = future
        self._write(wf.client_frame(wf.OP_TEXT, orjson.dumps({"id": self.next_id, **command})))
        return await future

    def _fail(self, reason: str) -> None:
        exc = ConnectionError(reason)
        if not self.opened.done():
            self.opened.set_exception(exc)
        waiting, self.waiting = self.waiting, {}
        for future in waiting.values():
            if not future.done():
                future.set_exception(exc)
        if self.transport is not None:
            self.transport.abort()
