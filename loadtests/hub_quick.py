"""A quick fan-out measurement used while building the hub (the full benchmark tool lives in
loadtests/fanout/). Opens N raw subscriber connections to one channel, publishes through the
normal path (an admin websocket `publish`, i.e. through Redis) at a set rate for a while, and
prints delivered publications/s, latency percentiles from timestamps in the payloads (sampled
clients) and gaps.

    python -m loadtests.hub_quick --url ws://127.0.0.1:8000 --token ADMIN_JWT \
        --subscribers 1000 --rate 300 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import statistics
import struct
import time
import uuid
from urllib.parse import urlsplit

import orjson


class Sub(asyncio.Protocol):
    """A raw websocket subscriber: handshake by hand, parse server frames, count messages."""

    def __init__(self, path: str, host: str, channel: str, sample: bool, stats: dict) -> None:
        self.buf = bytearray()
        self.handshaken = False
        self.path, self.host, self.channel = path, host, channel
        self.sample = sample
        self.stats = stats
        self.ready = asyncio.get_running_loop().create_future()
        self.last = 0
        self.closed_code: int | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(  # type: ignore[attr-defined]
            f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: souk.v1.json\r\n\r\n".encode()
        )

    def send_text(self, text: bytes) -> None:
        self.send_frame(0x81, text)

    def send_frame(self, first: int, data: bytes) -> None:
        mask = os.urandom(4)
        n = len(data)
        size = bytes([0x80 | n]) if n < 126 else struct.pack("!BH", 0x80 | 126, n)
        head = bytes([first]) + size
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.transport.write(head + mask + masked)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.handshaken:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            del self.buf[: end + 4]
            self.handshaken = True
            self.send_text(orjson.dumps({"id": 1, "op": "subscribe", "channel": self.channel}))
        while len(self.buf) >= 2:
            b1 = self.buf[1] & 0x7F
            pos = 2
            if b1 == 126:
                if len(self.buf) < 4:
                    return
                b1 = struct.unpack_from("!H", self.buf, 2)[0]
                pos = 4
            elif b1 == 127:
                if len(self.buf) < 10:
                    return
                b1 = struct.unpack_from("!Q", self.buf, 2)[0]
                pos = 10
            if len(self.buf) < pos + b1:
                return
            opcode = self.buf[0] & 0x0F
            payload = bytes(self.buf[pos : pos + b1])
            del self.buf[: pos + b1]
            if opcode == 0x8:
                self.closed_code = struct.unpack_from("!H", payload)[0] if payload else None
                continue
            if opcode == 0x9:  # keepalive ping: answer or the server drops us
                self.send_frame(0x8A, payload)
                continue
            if opcode == 0xA:
                continue
            self.on_payload(payload)

    def on_payload(self, payload: bytes) -> None:
        if not self.ready.done():
            if b'"result"' not in payload:
                self.ready.set_exception(RuntimeError(f"subscribe failed: {payload[:200]!r}"))
            else:
                self.ready.set_result(None)
            return
        count = payload.count(b'"offset":')
        self.stats["delivered"] += count
        if self.sample:
            now = time.time() * 1000
            for line in payload.split(b"\n"):
                msg = orjson.loads(line)
                off = msg.get("offset")
                if off is not None:
                    if self.last and off != self.last + 1:
                        self.stats["gaps"] += 1
                    self.last = off
                    self.stats["lat"].append(now - msg["data"]["ts"])


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="ws://127.0.0.1:8000", help="comma-separated servers")
    ap.add_argument("--token", required=True)
    ap.add_argument("--subscribers", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=300)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--sample", type=int, default=20)
    args = ap.parse_args()
    urls = [urlsplit(u) for u in args.url.split(",")]  # subscribers round-robin over servers
    channel = f"auction:{uuid.uuid4()}"
    stats: dict = {"delivered": 0, "gaps": 0, "lat": []}
    loop = asyncio.get_running_loop()
    subs = []
    every = max(1, args.subscribers // args.sample)  # latency sampled across the order
    for i in range(args.subscribers):
        u = urls[i % len(urls)]
        _, proto = await loop.create_connection(
            lambda i=i, u=u: Sub("/v1/ws", u.netloc, channel, i % every == 0, stats),
            u.hostname, u.port)
        subs.append(proto)
    await asyncio.gather(*(s.ready for s in subs))
    print(f"{len(subs)} subscribers on {channel}")
    from websockets.asyncio.client import connect

    async with connect(args.url.split(",")[0] + "/v1/ws", subprotocols=["souk.v1.json"],  # type: ignore[list-item]
                       additional_headers={"Authorization": f"Bearer {args.token}"}) as pub:
        async def drain() -> None:
            async for _ in pub:
                pass

        drainer = asyncio.ensure_future(drain())
        pad = "x" * 140
        n = 0
        start = time.perf_counter()
        stats["delivered"] = 0
        while (elapsed := time.perf_counter() - start) < args.seconds:
            due = int(elapsed * args.rate)
            while n < due:
                n += 1
                await pub.send(orjson.dumps({"id": n, "op": "publish", "channel": channel,
                                             "data": {"ts": time.time() * 1000, "n": n,
                                                      "pad": pad}}).decode())
            await asyncio.sleep(0.002)
        await asyncio.sleep(1.0)
        drainer.cancel()
    lat = sorted(stats["lat"])
    q = statistics.quantiles(lat, n=100) if len(lat) > 2 else [0] * 99
    print(f"published {n} in {args.seconds}s; delivered {stats['delivered']} "
          f"(expected {n * len(subs)}) = {stats['delivered'] / args.seconds:,.0f}/s; "
          f"gaps {stats['gaps']}; latency ms p50 {q[49]:.1f} p99 {q[98]:.1f} max {lat[-1]:.1f}")
    closed = sum(1 for s in subs if s.closed_code)
    print(f"closed by server: {closed}")


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
