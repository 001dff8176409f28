"""A Souk websocket connection for locust users (gevent; websocket-client, a locust dependency).

Every command is timed from send to answer and reported as a locust request of type `WS`
(name: the op, or the name given); every publication is counted and, when its delay is known,
reported as a request of type `PUSH` named after the channel kind and event type (no ids), with
the delivery delay as its response time. Offset gaps and unexpected disconnects are reported as
failures (`PUSH gap <kind>`, `WS disconnect`), so the web UI, the CSV files and the HTML report
show them beside the HTTP calls."""

from __future__ import annotations

import contextlib
import logging
import random
import struct
import time
from collections.abc import Callable, Iterable
from typing import Any

import gevent
import orjson
import websocket
from gevent.event import AsyncResult

from loadtests.crowd.tracker import Gaps, channel_kind, messages, server_time_ms

log = logging.getLogger(__name__)
SUBPROTOCOL = "souk.v1.json"


class CommandError(Exception):
    """An error answer to a command: `code` is the server's stable code."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code


class OffsetGap(Exception):
    pass


class Disconnected(Exception):
    pass


Publication = Callable[[str, dict[str, Any], float], None]


class SoukSocket:
    """One websocket to `/v1/ws`; `fire` is locust's `events.request.fire`.

    `on_publication(channel, message, received_at_monotonic)` is called for every publication
    (after gap accounting). `command` blocks the calling greenlet until the answer comes or
    `timeout` passes (a timeout is a failure)."""

    def __init__(self, fire: Callable[..., None], ws_url: str, *, token: str | None = None,
                 on_publication: Publication | None = None, sample: float = 1.0,
                 timeout: float = 10.0) -> None:
        self._fire = fire
        self.url = ws_url
        self.token = token
        self.on_publication = on_publication
        self.sample = sample
        self.timeout = timeout
        self.gaps = Gaps()
        self.received = 0
        self._next_id = 1
        self._pending: dict[int, AsyncResult] = {}
        self._subscribing: dict[int, str] = {}  # command id → channel
        self.epochs: dict[str, str] = {}  # channel → epoch of its offsets
        self.close_code: int | None = None  # the server's close code, once closed
        self._ws: websocket.WebSocket | None = None
        self._reader: gevent.Greenlet | None = None
        self._closing = False

    # --- reporting ----------------------------------------------------------------------

    def report(self, kind: str, name: str, ms: float, *, length: int = 0,
               error: Exception | None = None) -> None:
        self._fire(request_type=kind, name=name, response_time=ms, response_length=length,
                   exception=error, context={})

    # --- life ---------------------------------------------------------------------------

    def connect(self) -> None:
        header = [f"Authorization: Bearer {self.token}"] if self.token else []
        t0 = time.perf_counter()
        try:
            self._ws = websocket.create_connection(
                self.url, subprotocols=[SUBPROTOCOL], header=header, timeout=self.timeout,
                enable_multithread=True)
        except Exception as exc:
            self.report("WS", "connect", (time.perf_counter() - t0) * 1000, error=exc)
            raise
        self.report("WS", "connect", (time.perf_counter() - t0) * 1000)
        self._ws.settimeout(None)  # the reader waits as long as the server stays silent
        self._reader = gevent.spawn(self._read)

    def close(self) -> None:
        self._closing = True
        if self._ws is not None:
            with contextlib.suppress(Exception):  # a socket that may be gone already
                self._ws.close(timeout=1)
        if self._reader is not None:
            self._reader.kill(block=False)

    @property
    def open(self) -> bool:
        return self._ws is not None and self._ws.connected and not self._closing

    # --- commands -----------------------------------------------------------------------

    def command(self, op: str, *, name: str | None = None, expected: Iterable[str] = (),
                **fields: Any) -> dict[str, Any] | None:
        """Send one command and wait for its answer. Returns the result, or None after an
        error answer whose code is in `expected` (reported as a success named
        `<name> [<code>]`: a business outcome such as a bid that lost a race). Any other error,
        a timeout or a dead socket is reported as a failure and raised as CommandError."""
        name = name or op
        if not self.open:
            self.report("WS", name, 0, error=Disconnected("socket closed"))
            raise CommandError("disconnected")
        cid = self._next_id
        self._next_id += 1
        waiter: AsyncResult = AsyncResult()
        self._pending[cid] = waiter
        frame = orjson.dumps({"id": cid, "op": op, **fields})
        t0 = time.perf_counter()
        try:
            assert self._ws is not None
            self._ws.send(frame.decode())
            reply: dict[str, Any] = waiter.get(timeout=self.timeout)
        except Exception as exc:
            self.report("WS", name, (time.perf_counter() - t0) * 1000, error=exc)
            raise CommandError("timeout" if isinstance(exc, gevent.Timeout) else "send") from exc
        finally:
            self._pending.pop(cid, None)
        ms = (time.perf_counter() - t0) * 1000
        if "error" in reply:
            code = str(reply["error"].get("code"))
            if code in set(expected):
                self.report("WS", f"{name} [{code}]", ms, length=len(frame))
                return None
            err = CommandError(code, str(reply["error"].get("message", "")))
            self.report("WS", name, ms, error=err)
            raise err
        self.report("WS", name, ms, length=len(frame))
        result: dict[str, Any] = reply.get("result", {})
        return result

    def subscribe(self, channel: str) -> dict[str, Any] | None:
        """Subscribe; the result's offset starts the channel's gap accounting in the reader,
        in stream order (the publications that follow it were written after it)."""
        self._subscribing[self._next_id] = channel
        return self.command("subscribe", name=f"subscribe {channel_kind(channel)}",
                            channel=channel)

    @property
    def resumable(self) -> bool:
        """Closed in a way the protocol says to reconnect and recover from (4000-4499, or the
        network), rather than terminally (4500-4999)."""
        return not self.open and not (self.close_code and 4500 <= self.close_code <= 4999)

    def resume(self, old: SoukSocket) -> None:
        """On this new connection, subscribe again to `old`'s channels with `since` (their
        epoch and last offset seen): replayed publications go through the same counting and
        gap checks; `recovered: false` is a failure (the client missed publications and must
        reload over REST)."""
        for channel, offset in list(old.gaps.last.items()):
            epoch = old.epochs.get(channel)
            if epoch is None:
                self.subscribe(channel)
                continue
            self.gaps.last[channel] = offset
            self._subscribing[self._next_id] = channel
            result = self.command("subscribe", name=f"resubscribe {channel_kind(channel)}",
                                  channel=channel, since={"epoch": epoch, "offset": offset})
            if result is not None and not result.get("recovered"):
                self.report("PUSH", f"recovery {channel_kind(channel)}", 0,
                            error=OffsetGap("recovered: false, publications missed"))

    # --- the reader ---------------------------------------------------------------------

    def _read(self) -> None:
        ws = self._ws
        assert ws is not None
        while True:
            try:
                opcode, frame = ws.recv_data_frame(False)
            except Exception as exc:
                self._lost(f"read failed: {exc!r}")
                return
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                data = frame.data or b""
                code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else 1005
                self.close_code = code
                self._lost(f"closed by the server with {code} {data[2:].decode(errors='replace')}")
                return
            if opcode != websocket.ABNF.OPCODE_TEXT:
                continue
            now = time.monotonic()
            for msg in messages(frame.data):
                self._dispatch(msg, now)

    def _lost(self, why: str) -> None:
        for waiter in self._pending.values():
            waiter.set_exception(Disconnected(why))
        if not self._closing:
            self._closing = True
            self.report("WS", "disconnect", 0, error=Disconnected(why))

    def _subscribed(self, channel: str, result: dict[str, Any], now: float) -> None:
        """A subscribe result, in stream order: replayed publications first, then the live
        ones continue after its offset."""
        if result.get("recovered"):
            for pub in result.get("publications") or []:
                self._dispatch(pub if "channel" in pub else {"channel": channel, **pub}, now)
        if isinstance(result.get("offset"), int):
            self.gaps.start(channel, result["offset"])
        if isinstance(result.get("epoch"), str):
            self.epochs[channel] = result["epoch"]

    def _dispatch(self, msg: Any, now: float) -> None:
        if not isinstance(msg, dict):
            return
        if "id" in msg:
            channel = self._subscribing.pop(msg["id"], None)
            if channel is not None and isinstance(msg.get("result"), dict):
                self._subscribed(channel, msg["result"], now)
            waiter = self._pending.get(msg["id"])
            if waiter is not None:
                waiter.set(msg)
            return
        channel = msg.get("channel")
        if channel is None:
            if "error" in msg:
                self.report("WS", "error without id", 0, error=CommandError(
                    str(msg["error"].get("code")), str(msg["error"].get("message", ""))))
            return
        self.received += 1
        data = msg.get("data")
        kind = channel_kind(channel)
        offset = msg.get("offset")
        if isinstance(offset, int):
            lost = self.gaps.observe(channel, offset)
            if lost:
                what = f"{lost} offsets missing" if lost > 0 else f"repeat of {offset}"
                self.report("PUSH", f"gap {kind}", 0, error=OffsetGap(what))
        stamp = server_time_ms(data)
        if stamp is not None and (self.sample >= 1 or random.random() < self.sample):
            dtype = data.get("type", "?") if isinstance(data, dict) else "?"
            self.report("PUSH", f"{kind} {dtype}", max(0.0, time.time() * 1000 - stamp))
        if self.on_publication is not None:
            self.on_publication(channel, msg, now)
