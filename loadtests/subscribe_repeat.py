"""Does a new subscriber of a busy channel receive a publication it was already told about?

    DATABASE_URL=... REDIS_URL=... flock /tmp/souk-bench.lock \\
        .venv/bin/python -m loadtests.subscribe_repeat --subscribers 200 --rate 50 --seconds 10

Starts a server on 127.0.0.1 (loadtests/crowd/server.py), publishes on one channel through the
admin route at `--rate` a second, and meanwhile opens `--subscribers` plain `websockets`
clients spread over `--seconds`, each subscribing without `since` and reading for 3 s. The
protocol says live publications follow the subscribe result's `offset` with the next one; the
command prints how many subscribers got an offset at or below it (or any before the reply),
with the first offsets each of them saw. Found by the show night (BENCHMARKS.md)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import websockets

from loadtests.crowd.server import LocalServer


async def subscriber(url: str, channel: str, delay: float, read_s: float) -> list[Any] | None:
    """The offsets seen (the reply as ('reply', offset)) if something came out of order."""
    await asyncio.sleep(delay)
    seen: list[Any] = []
    top: int | None = None
    bad = False
    async with websockets.connect(url, subprotocols=["souk.v1.json"]) as ws:  # type: ignore[list-item]
        await ws.send(orjson.dumps({"id": 1, "op": "subscribe", "channel": channel}).decode())
        end = time.monotonic() + read_s
        while time.monotonic() < end:
            try:
                frame = await asyncio.wait_for(ws.recv(), 0.5)
            except TimeoutError:
                continue
            for line in (frame if isinstance(frame, bytes) else frame.encode()).split(b"\n"):
                if not line.strip():
                    continue
                msg = orjson.loads(line)
                if msg.get("id") == 1:
                    top = msg["result"]["offset"]
                    seen.append(("reply", top))
                elif isinstance(msg.get("offset"), int):
                    seen.append(msg["offset"])
                    bad = bad or top is None or msg["offset"] <= top
    return seen if bad else None


async def publisher(c: httpx.AsyncClient, headers: dict[str, str], channel: str, rate: float,
                    until: float) -> None:
    n = 0
    while time.monotonic() < until:
        r = await c.post(f"/v1/admin/channels/{channel}/publications", json={"data": {"n": n}},
                         headers=headers)
        r.raise_for_status()
        n += 1
        await asyncio.sleep(1 / rate)


async def run(server: LocalServer, args: argparse.Namespace) -> list[list[Any]]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:
        r = await c.post("/v1/auth/login", json={"email": server.admin_email,
                                                 "password": server.admin_password})
        headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
        channel = f"auction:{uuid.uuid4()}"
        pub = asyncio.ensure_future(publisher(c, headers, channel, args.rate,
                                              time.monotonic() + args.seconds + 4))
        url = server.url.replace("http://", "ws://") + "/v1/ws"
        found = await asyncio.gather(*(
            subscriber(url, channel, args.seconds * i / args.subscribers, 3.0)
            for i in range(args.subscribers)))
        pub.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pub
    return [f for f in found if f is not None]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--subscribers", type=int, default=200)
    p.add_argument("--rate", type=float, default=50)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--out", type=Path, default=Path("subscribe-repeat"))
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    server = LocalServer(args.seconds + 60).start(args.out)
    try:
        bad = asyncio.run(run(server, args))
    finally:
        server.stop()
    print(f"{len(bad)} of {args.subscribers} subscribers saw an offset at or below the "
          "subscribe result's (or before it)")
    for seen in bad[:10]:
        print("  ", seen[:8])


if __name__ == "__main__":
    main()
