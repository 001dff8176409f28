"""A trivial fan-out server used to measure the load generator's own ceiling.

It does the least a server can: raw asyncio protocols, no Redis, no auth. Publications arrive
as `publish` commands on any connection; all publications that arrive in one read are given
offsets, encoded ONCE (one JSON array frame, or one frame each concatenated) and written to every
subscriber with ONE `transport.write` per connection. With large bursts its cost per delivery is
far below the generator's, so the generator saturates first and the delivered rate at that point
is the generator's ceiling.

    python -m loadtests.fanout.blaster --port 8766 --format array
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import cast

import orjson

from loadtests.fanout import wsframes as wf

SUBPROTOCOL = "souk.v1.json"


class ClientFrames:
    """Parser of masked client frames (commands are small; no fragmentation support needed)."""

    def __init__(self) -> None:
        self.buf = b""

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        buf = self.buf + data
        out: list[tuple[int, bytes]] = []
        pos = 0
        while len(buf) - pos >= 6:
            b0, b1 = buf[pos], buf[pos + 1]
            n = b1 & 0x7F
            start = pos + 2
            if n == 126:
                n = int.from_bytes(buf[start : start + 2], "big")
                start += 2
            elif n == 127:
                n = int.from_bytes(buf[start : start + 8], "big")
                start += 8
            if not b1 & 0x80:
                raise wf.ProtocolError("client frames must be masked")
            stop = start + 4 + n
            if stop > len(buf):
                break
            out.append((b0 & 0x0F, wf.mask(buf[start + 4 : stop], buf[start : start + 4])))
            pos = stop
        self.buf = buf[pos:]
        return out


class Server:
    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self.channels: dict[str, set[Conn]] = {}
        self.offsets: dict[str, int] = {}

    def fanout(self, channel: str, datas: list[bytes]) -> None:
        members = self.channels.get(channel)
        base = self.offsets.get(channel, 0)
        self.offsets[channel] = base + len(datas)
        if not members:
            return
        name = orjson.dumps(channel)
        pubs = [
            b'{"channel":%s,"offset":%d,"data":%s}' % (name, base + 1 + i, d)
            for i, d in enumerate(datas)
        ]
        if self.fmt == "array":
            buf = wf.server_frame(wf.OP_TEXT, b"[" + b",".join(pubs) + b"]")
        else:
            buf = b"".join(wf.server_frame(wf.OP_TEXT, p) for p in pubs)
        for conn in members:
            conn.transport.write(buf)


class Conn(asyncio.Protocol):
    def __init__(self, server: Server) -> None:
        self.server = server
        self.transport: asyncio.Transport
        self.open = False
        self.hs = b""
        self.frames = ClientFrames()
        self.joined: set[str] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if not self.open:
            self.hs += data
            end = self.hs.find(b"\r\n\r\n")
            if end < 0:
                return
            key = ""
            for line in self.hs[:end].decode("latin-1").split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "sec-websocket-key":
                    key = value.strip()
            self.transport.write(
                (
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    f"Connection: Upgrade\r\nSec-WebSocket-Accept: {wf.accept_for(key)}\r\n"
                    f"Sec-WebSocket-Protocol: {SUBPROTOCOL}\r\n\r\n"
                ).encode()
            )
            self.open = True
            data, self.hs = self.hs[end + 4 :], b""
        batches: dict[str, list[bytes]] = {}
        replies: list[bytes] = []
        for opcode, payload in self.frames.feed(data):
            if opcode == wf.OP_CLOSE:
                self.transport.close()
                return
            if opcode == wf.OP_TEXT:
                replies.append(self.command(payload, batches))
        for channel, datas in batches.items():
            self.server.fanout(channel, datas)
        if replies:
            self.transport.write(b"".join(wf.server_frame(wf.OP_TEXT, r) for r in replies))

    def command(self, payload: bytes, batches: dict[str, list[bytes]]) -> bytes:
        cmd = orjson.loads(payload)
        cid, op, channel = cmd.get("id"), cmd.get("op"), cmd.get("channel")
        if op == "subscribe":
            self.server.channels.setdefault(channel, set()).add(self)
            self.joined.add(channel)
            offset = self.server.offsets.get(channel, 0)
            return orjson.dumps({"id": cid, "result": {"epoch": "blast", "offset": offset}})
        if op == "publish":
            batches.setdefault(channel, []).append(orjson.dumps(cmd["data"]))
            return orjson.dumps({"id": cid, "result": {}})
        return orjson.dumps({"id": cid, "error": {"code": "unknown_op", "message": str(op)}})

    def connection_lost(self, exc: Exception | None) -> None:
        for channel in self.joined:
            self.server.channels.get(channel, set()).discard(self)


async def main(port: int, fmt: str) -> None:
    loop = asyncio.get_running_loop()
    server = Server(fmt)
    srv = await loop.create_server(lambda: Conn(server), "127.0.0.1", port, backlog=4096)
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set_result, None)
    await stop
    srv.close()


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--format", choices=("array", "frames"), default="array")
    args = parser.parse_args()
    import uvloop

    uvloop.run(main(args.port, args.format))


if __name__ == "__main__":
    cli()
