"""Pluggable publish paths and the rate-controlled publish loop.

A publisher takes a list of ready payloads (the `data` of publications, JSON bytes) and sends
them through one path:
- `redis`: `PUBLISH` on a Redis channel (what the bare websockets baseline listens to);
- `ws`: the `publish` command of the websocket protocol on one extra connection (the normal
  client path, e.g. show chat, when the server allows it on the channel);
- `http`: one HTTP `POST` per payload to an admin/test publish route.
Each payload carries the send time, so latency is measured publish-call to receive.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import orjson

from loadtests.fanout import wsframes as wf
from loadtests.fanout.client import SUBPROTOCOL, Endpoint

PAYLOAD_SIZE = 200


def make_payload(seq: int, ts_ns: int, size: int = PAYLOAD_SIZE) -> bytes:
    """A JSON object of exactly `size` bytes (or the minimum possible) with `ts` and `seq`."""
    head = b'{"ts":%d,"seq":%d,"pad":"' % (ts_ns, seq)
    pad = max(0, size - len(head) - 2)
    return head + b"x" * pad + b'"}'


class Publisher(Protocol):
    name: str

    async def start(self) -> None: ...

    async def publish(self, payloads: list[bytes]) -> None:
        """Send `payloads` together (as one write or one pipeline where the path allows)."""

    async def finish(self, timeout_s: float) -> tuple[int, int]:
        """Wait for outstanding confirmations; return (accepted, refused)."""

    async def close(self) -> None: ...


class RedisPublisher:
    """`PUBLISH channel payload`, pipelined per burst."""

    name = "redis"

    def __init__(self, redis_url: str, redis_channel: str) -> None:
        import redis.asyncio as aioredis

        self._redis = aioredis.Redis.from_url(redis_url)
        self._channel = redis_channel
        self.accepted = 0
        self.refused = 0

    async def start(self) -> None:
        await self._redis.ping()

    async def publish(self, payloads: list[bytes]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for p in payloads:
                pipe.publish(self._channel, p)
            await pipe.execute()
        self.accepted += len(payloads)

    async def finish(self, timeout_s: float) -> tuple[int, int]:
        return self.accepted, self.refused

    async def close(self) -> None:
        await self._redis.aclose()


class WsPublisher:
    """`{"id", "op": "publish", "channel", "data"}` commands on one websocket connection; the
    server's replies are counted as accepted or refused (the first few errors are kept)."""

    name = "ws"

    def __init__(self, endpoint: Endpoint, channel: str, *, token: str | None = None) -> None:
        self._ep = endpoint
        self._channel = channel.encode()
        self._token = token
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._next_id = 100
        self._pending: dict[int, float] = {}
        self.rtts_ms: list[float] = []
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self.accepted = 0
        self.refused = 0
        self.errors: list[bytes] = []

    async def start(self) -> None:
        ep = self._ep
        self._reader, self._writer = await asyncio.open_connection(ep.host, ep.port)
        key = wf.new_key()
        headers = dict(ep.headers)
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        self._writer.write(
            wf.handshake_request(ep.host, ep.port, ep.path, key, subprotocol=SUBPROTOCOL,
                                 headers=headers)
        )
        buf = b""
        while True:
            chunk = await self._reader.read(65536)
            if not chunk:
                raise ConnectionError("publisher connection closed during handshake")
            done, buf = wf.parse_handshake_response(buf + chunk, key, subprotocol=SUBPROTOCOL)
            if done:
                break
        self._task = asyncio.create_task(self._read(buf))

    async def _read(self, first: bytes) -> None:
        assert self._reader is not None
        parser = wf.FrameParser()
        data = first
        while True:
            for opcode, payload in parser.feed(data):
                if opcode == wf.OP_TEXT:
                    self._on_text(payload)
                elif opcode == wf.OP_PING and self._writer is not None:
                    self._writer.write(wf.client_frame(wf.OP_PONG, payload))
                elif opcode == wf.OP_CLOSE:
                    return
            data = await self._reader.read(262144)
            if not data:
                return

    def _on_text(self, payload: bytes) -> None:
        items = orjson.loads(payload)
        for item in items if isinstance(items, list) else [items]:
            if not isinstance(item, dict) or item.get("id") not in self._pending:
                continue
            sent = self._pending.pop(item["id"])
            self.rtts_ms.append((time.perf_counter() - sent) * 1000)
            if "error" in item:
                self.refused += 1
                if len(self.errors) < 5:
                    self.errors.append(orjson.dumps(item["error"]))
            else:
                self.accepted += 1
        if not self._pending:
            self._idle.set()

    async def publish(self, payloads: list[bytes]) -> None:
        assert self._writer is not None
        frames = []
        for p in payloads:
            cid = self._next_id
            self._next_id += 1
            self._pending[cid] = time.perf_counter()
            cmd = b'{"id":%d,"op":"publish","channel":"%s","data":%s}' % (cid, self._channel, p)
            frames.append(wf.client_frame(wf.OP_TEXT, cmd))
        self._idle.clear()
        self._writer.write(b"".join(frames))
        await self._writer.drain()

    async def finish(self, timeout_s: float) -> tuple[int, int]:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        return self.accepted, self.refused

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._writer is not None:
            self._writer.close()


class HttpPublisher:
    """One `POST` per payload to `url` (`{channel}` in it is replaced by the channel name);
    `body` is a template where `{data}` is replaced by the payload and `{channel}` by the
    channel name; 2xx counts as accepted.

    A minimal HTTP/1.1 keep-alive client on `connections` persistent connections, each running
    one request at a time: a general client (httpx) costs about a millisecond of CPU per
    request here, which made the publisher, not the server, the bottleneck."""

    name = "http"

    def __init__(self, url: str, channel: str, *, body: str, headers: dict[str, str],
                 connections: int = 8) -> None:
        parts = urlsplit(url.replace("{channel}", channel))
        if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "localhost"):
            raise ValueError("the benchmark targets http:// on the loopback interface only")
        self._host, self._port = parts.hostname, parts.port or 80
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        lines = [f"POST {path} HTTP/1.1", f"Host: {self._host}:{self._port}",
                 "Content-Type: application/json",
                 *(f"{k}: {v}" for k, v in headers.items()), "Content-Length: "]
        self._head = "\r\n".join(lines).encode()
        before, _, after = body.replace("{channel}", channel).partition("{data}")
        self._before, self._after = before.encode(), after.encode()
        self._connections = connections
        self._queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        self.waits_ms: list[float] = []  # queued in this publisher before a connection was free
        self.rtts_ms: list[float] = []  # request written -> response read
        self._workers: list[asyncio.Task[None]] = []
        self.accepted = 0
        self.refused = 0
        self.errors: list[bytes] = []

    async def start(self) -> None:
        for _ in range(self._connections):
            reader, writer = await asyncio.open_connection(self._host, self._port)
            self._workers.append(asyncio.create_task(self._work(reader, writer)))

    async def _work(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                queued, body = await self._queue.get()
                try:
                    started = time.perf_counter()
                    self.waits_ms.append((started - queued) * 1000)
                    writer.write(self._head + b"%d\r\n\r\n" % len(body) + body)
                    status, content = await read_response(reader)
                    self.rtts_ms.append((time.perf_counter() - started) * 1000)
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    self._refuse(repr(exc).encode())
                    return
                finally:
                    self._queue.task_done()
                if 200 <= status < 300:
                    self.accepted += 1
                else:
                    self._refuse(b"%d %s" % (status, content[:300]))
        finally:
            writer.close()

    def _refuse(self, why: bytes) -> None:
        self.refused += 1
        if len(self.errors) < 5:
            self.errors.append(why)

    async def publish(self, payloads: list[bytes]) -> None:
        for p in payloads:
            self._queue.put_nowait((time.perf_counter(), self._before + p + self._after))

    def backlog(self) -> int:
        return self._queue.qsize()

    async def finish(self, timeout_s: float) -> tuple[int, int]:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout_s)
        return self.accepted, self.refused

    async def close(self) -> None:
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Status and body of one HTTP/1.1 response with a Content-Length (what Starlette sends)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length is None:
        raise ValueError("response without Content-Length")
    return status, await reader.readexactly(length)


@dataclass(frozen=True)
class PublishSpec:
    """Everything a publisher process needs (picklable: it crosses a process boundary)."""

    method: str  # redis | ws | http
    channel: str
    rate: float
    burst: int
    duration_s: float
    size: int = PAYLOAD_SIZE
    ws_url: str | None = None
    token: str | None = None
    redis_url: str | None = None
    redis_channel: str | None = None
    http_url: str | None = None
    http_body: str = '{"data":{data}}'
    http_connections: int = 32

    def build(self) -> Publisher:
        if self.method == "redis":
            assert self.redis_url
            assert self.redis_channel
            return RedisPublisher(self.redis_url, self.redis_channel)
        if self.method == "ws":
            assert self.ws_url
            return WsPublisher(Endpoint(self.ws_url), self.channel, token=self.token)
        if self.method == "http":
            assert self.http_url
            headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
            return HttpPublisher(self.http_url, self.channel, body=self.http_body,
                                 headers=headers, connections=self.http_connections)
        raise ValueError(f"unknown publish method {self.method!r}")


def ready() -> bool:
    """A no-op the parent runs first in the publisher process so that its start-up (imports)
    happens before the measured window."""
    return True


def quantiles(values: list[float]) -> dict[str, float]:
    """p50/p99/max of raw samples (nearest rank), in the samples' unit; {} when empty."""
    if not values:
        return {}
    ordered = sorted(values)
    n = len(ordered)

    def rank(q: float) -> float:
        return round(ordered[min(n, max(1, math.ceil(round(q * n, 9)))) - 1], 2)

    return {"p50": rank(0.5), "p99": rank(0.99), "max": round(ordered[-1], 2), "n": n}


def publish_process(spec: PublishSpec) -> dict[str, object]:
    """Entry point of the publisher process: publish per `spec` and report.

    The publisher runs in its own process so that its schedule is not delayed by the receiving
    side's event loop (which is saturated at the rates that matter)."""
    import uvloop

    async def main() -> dict[str, object]:
        publisher = spec.build()
        await publisher.start()
        try:
            report = await publish_loop(publisher, rate=spec.rate, burst=spec.burst,
                                        duration_s=spec.duration_s, size=spec.size)
            accepted, refused = await publisher.finish(timeout_s=10.0)
        finally:
            await publisher.close()
        errors = [e.decode("utf-8", "replace") for e in getattr(publisher, "errors", [])]
        timing = {name: quantiles(getattr(publisher, name, []))
                  for name in ("rtts_ms", "waits_ms") if hasattr(publisher, name)}
        return {"publisher_timing": timing, "sent": report.sent, "accepted": accepted,
                "refused": refused,
                "started_ns": report.started_ns, "ended_ns": report.ended_ns,
                "late_ticks": report.late_ticks, "errors": errors[:3], "path": publisher.name}

    return uvloop.run(main())


@dataclass(frozen=True)
class PublishReport:
    sent: int
    started_ns: int
    ended_ns: int
    late_ticks: int  # ticks that started more than one interval late (publisher could not keep up)


async def publish_loop(
    publisher: Publisher, *, rate: float, burst: int, duration_s: float,
    size: int = PAYLOAD_SIZE,
) -> PublishReport:
    """Publish `rate` payloads per second for `duration_s`, `burst` payloads at a time (every
    `burst / rate` seconds), on an absolute schedule (no drift; no catch-up storms after a
    stall longer than one second)."""
    if rate <= 0 or burst < 1 or duration_s <= 0:
        raise ValueError("rate, burst and duration must be positive")
    loop = asyncio.get_running_loop()
    interval = burst / rate
    start = loop.time()
    due = start
    seq = 0
    late = 0
    started_ns = time.time_ns()
    while loop.time() - start < duration_s:
        payloads = [make_payload(seq + i, time.time_ns(), size) for i in range(burst)]
        await publisher.publish(payloads)
        seq += burst
        due += interval
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            if delay < -interval:
                late += 1
            if delay < -1.0:
                due = loop.time()
            await asyncio.sleep(0)
    return PublishReport(seq, started_ns, time.time_ns(), late)
