"""A small test client over the `websockets` library: commands with ids, and publications
split out of frames that carry several messages."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import msgpack
import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

TIMEOUT = 10.0


class WsClient:
    def __init__(self, ws: ClientConnection, *, binary: bool = False) -> None:
        self.ws = ws
        self.binary = binary
        self.ids = itertools.count(1)
        self.inbox: list[dict[str, Any]] = []  # publications and pushes, in arrival order
        self.replies: dict[int, dict[str, Any]] = {}
        self.unmatched: list[dict[str, Any]] = []  # replies without id

    @classmethod
    async def open(cls, url: str, *, token: str | None = None, binary: bool = False,
                   **kw: Any) -> WsClient:
        headers = {"Authorization": f"Bearer {token}"} if token else None
        proto = "souk.v1.msgpack" if binary else "souk.v1.json"
        ws = await connect(url + "/v1/ws", subprotocols=[proto],  # type: ignore[list-item]
                           additional_headers=headers, max_size=None, **kw)
        return cls(ws, binary=binary)

    def _split(self, frame: str | bytes) -> list[dict[str, Any]]:
        if self.binary:
            assert isinstance(frame, bytes)
            unpacker = msgpack.Unpacker(raw=False)
            unpacker.feed(frame)
            return list(unpacker)
        assert isinstance(frame, str)
        return [orjson.loads(line) for line in frame.split("\n")]

    async def _read_one(self, wait_s: float = TIMEOUT) -> None:
        frame = await asyncio.wait_for(self.ws.recv(), wait_s)
        for msg in self._split(frame):
            if "id" in msg and ("result" in msg or "error" in msg):
                self.replies[msg["id"]] = msg
            elif "error" in msg:
                self.unmatched.append(msg)
            else:
                self.inbox.append(msg)

    async def send_raw(self, data: str | bytes) -> None:
        await self.ws.send(data)

    async def call(self, op: str, **fields: Any) -> dict[str, Any]:
        id_ = next(self.ids)
        frame = {"id": id_, "op": op, **fields}
        await self.ws.send(msgpack.packb(frame) if self.binary else orjson.dumps(frame).decode())
        return await self.reply(id_)

    async def reply(self, id_: int) -> dict[str, Any]:
        while id_ not in self.replies:
            await self._read_one()
        return self.replies.pop(id_)

    async def next_error(self) -> dict[str, Any]:
        while not self.unmatched:
            await self._read_one()
        return self.unmatched.pop(0)

    async def publications(self, n: int, wait_s: float = TIMEOUT) -> list[dict[str, Any]]:
        """Wait until `n` pushes arrived; return and remove them."""
        while len(self.inbox) < n:
            await self._read_one(wait_s)
        out, self.inbox = self.inbox[:n], self.inbox[n:]
        return out

    async def until_closed(self, wait_s: float = TIMEOUT) -> int | None:
        """Read (keeping what arrives) until the server closes; the close code it sent."""
        try:
            while True:
                await self._read_one(wait_s)
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None

    async def close(self) -> None:
        await self.ws.close()
