"""Rider tracking benchmark against a real uvicorn process (bounded; 127.0.0.1 only).

    flock /tmp/souk-bench.lock env DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python -m loadtests.tracking_bench watch --riders 1000 --duration 30
    ... tracking_bench ingest --transport ws --connections 200 --duration 20
    ... tracking_bench ingest --transport osmand --connections 64 --duration 20

`watch`: each rider has an order out for delivery and its buyer watches `order:{id}`; every
rider reports once a second over the websocket `location` op (`--osmand`: OsmAnd HTTP); the
watchers measure ingest-to-customer latency (receive time minus the fix's time, which the rider
stamps when sending) and count fixes that never reached their order's watcher.

`ingest`: the highest sustained ingest rate — every connection (one rider, one device key)
sends fixes back to back (websocket ops pipelined `--window` deep; OsmAnd over keep-alive
HTTP/1.1, one request in flight per connection) for `--duration` seconds. Reported: accepted
fixes per second (from the server's own counter) and server CPU per accepted fix (from
/proc/<pid>/stat).

Setup writes users, orders and device keys straight into a fresh schema (no password hashing,
no ledger: this measures tracking, not sign-up) and drops the schema and keys afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import math
import os
import random
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import asyncpg
import orjson
from websockets.asyncio.client import ClientConnection, connect

from core.auth import KeyRing, Role, TokenService, generate_key
from loadtests.checkout_bench import free_port, start_server, wait_ready
from loadtests.fanout.procstat import sample
from testkit.services import drop_schema_and_keys

CENTRE = (52.52, 13.405)


@dataclass
class Party:
    rider: uuid.UUID
    rider_token: str
    key: str
    buyer_token: str = ""
    order: uuid.UUID | None = None
    lat: float = 0.0
    lon: float = 0.0


@dataclass
class Watch:
    latencies: list[float] = field(default_factory=list)
    sent: dict[uuid.UUID, set[int]] = field(default_factory=dict)
    seen: dict[uuid.UUID, set[int]] = field(default_factory=dict)
    replies: dict[str, int] = field(default_factory=dict)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def setup(pool: asyncpg.Pool, tokens: TokenService, n: int, orders: bool) -> list[Party]:
    async def user(role: Role) -> uuid.UUID:
        uid: uuid.UUID = await pool.fetchval(
            """INSERT INTO users (email, email_normalized, password_hash, display_name, role)
               VALUES ($1, $1, 'x', 'bench', $2) RETURNING id""",
            f"{role.value}-{uuid.uuid4().hex}@bench.example.com", role.value)
        return uid

    seller = await user(Role.SELLER)
    parties = []
    for i in range(n):
        rider = await user(Role.RIDER)
        key = f"trk_bench_{uuid.uuid4().hex}"
        await pool.execute("INSERT INTO tracking_devices (rider_id, key_hash) VALUES ($1, $2)",
                           rider, hashlib.sha256(key.encode()).digest())
        angle, dist = random.random() * 6.28, 0.002 + 0.02 * (i / max(n, 1))
        p = Party(rider, tokens.issue(rider, Role.RIDER), key,
                  lat=CENTRE[0] + dist * math.cos(angle),
                  lon=CENTRE[1] + dist * math.sin(angle))
        if orders:
            buyer = await user(Role.BUYER)
            p.buyer_token = tokens.issue(buyer, Role.BUYER)
            p.order = await pool.fetchval(
                """INSERT INTO orders (buyer_id, seller_id, rider_id, state, currency, total,
                                       dropoff_lat, dropoff_lon)
                   VALUES ($1, $2, $3, 'out_for_delivery', 'USD', 100, $4, $5) RETURNING id""",
                buyer, seller, rider, CENTRE[0], CENTRE[1])
        parties.append(p)
    return parties


async def ws_open(ws_url: str, token: str) -> ClientConnection:
    return await connect(ws_url + "/v1/ws", subprotocols=["souk.v1.json"],  # type: ignore[list-item]
                         additional_headers={"Authorization": f"Bearer {token}"}, max_size=None)


async def watcher(ws_url: str, p: Party, watch: Watch, until: float) -> None:
    ws = await ws_open(ws_url, p.buyer_token)
    assert p.order is not None
    await ws.send(orjson.dumps({"id": 1, "op": "subscribe",
                               "channel": f"order:{p.order}"}).decode())
    seen = watch.seen.setdefault(p.order, set())
    try:
        while time.time() < until + 3:
            try:
                frame = await asyncio.wait_for(ws.recv(), max(0.1, until + 3 - time.time()))
            except TimeoutError:
                break
            now_ms = time.time() * 1000
            for line in (frame if isinstance(frame, str) else frame.decode()).split("\n"):
                msg = orjson.loads(line)
                data = msg.get("data")
                if isinstance(data, dict) and data.get("type") == "rider.position":
                    seen.add(data["ts"])
                    watch.latencies.append(now_ms - data["ts"])
    finally:
        await ws.close()


async def reader(ws: ClientConnection, counts: dict[str, int]) -> None:
    async for frame in ws:
        for line in (frame if isinstance(frame, str) else frame.decode()).split("\n"):
            msg = orjson.loads(line)
            result = msg.get("result")
            key = "accepted" if result == {"accepted": True} else str(
                result.get("reason") if isinstance(result, dict) else msg.get("error"))
            counts[key] = counts.get(key, 0) + 1


async def http_get(reader_: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   path: str) -> int:
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    head = await reader_.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    if length:
        await reader_.readexactly(length)
    return status


def osmand_path(p: Party, ts_ms: int) -> str:
    return "/v1/tracking/osmand?" + urlencode({
        "id": p.key, "timestamp": f"{ts_ms / 1000:.3f}", "lat": f"{p.lat:.6f}",
        "lon": f"{p.lon:.6f}", "speed": "9.7", "bearing": "90", "accuracy": "5"})


async def rider_1hz(url: str, ws_url: str, p: Party, watch: Watch, until: float,
                    osmand: bool) -> None:
    sent = watch.sent.setdefault(p.order or p.rider, set())
    counts = watch.replies
    ws = conn = None
    if osmand:
        host, port = url.removeprefix("http://").split(":")
        conn = await asyncio.open_connection(host, int(port))
    else:
        ws = await ws_open(ws_url, p.rider_token)
        task = asyncio.create_task(reader(ws, counts))
    await asyncio.sleep(random.random())  # spread the riders over the second
    i = 0
    try:
        while time.time() < until:
            ts = int(time.time() * 1000)
            p.lat += 0.00005
            if conn is not None:
                status = await http_get(*conn, osmand_path(p, ts))
                counts[str(status)] = counts.get(str(status), 0) + 1
                if status == 200:
                    sent.add(ts)
            elif ws is not None:
                i += 1
                await ws.send(orjson.dumps({"id": i, "op": "location", "lat": p.lat,
                                            "lon": p.lon, "ts": ts, "speed": 5.5}).decode())
                sent.add(ts)
            await asyncio.sleep(max(0.0, 1.0 - (time.time() * 1000 - ts) / 1000))
    finally:
        if ws is not None:
            await asyncio.sleep(1)
            task.cancel()
            await ws.close()
        if conn is not None:
            conn[1].close()


async def rider_flat_out(url: str, ws_url: str, p: Party, until: float, transport: str,
                         window: int, counts: dict[str, int]) -> None:
    ts = int(time.time() * 1000) - 80_000 * 1000  # device time 1 s apart per fix
    if transport == "osmand":
        host, port = url.removeprefix("http://").split(":")
        r, w = await asyncio.open_connection(host, int(port))
        while time.time() < until:
            ts += 1000
            p.lat += 0.00002
            status = await http_get(r, w, osmand_path(p, ts))
            counts[str(status)] = counts.get(str(status), 0) + 1
        w.close()
        return
    ws = await ws_open(ws_url, p.rider_token)
    replies: dict[str, int] = {}
    task = asyncio.create_task(reader(ws, replies))
    i = 0
    while time.time() < until:
        while i - sum(replies.values()) < window:
            i += 1
            ts += 1000
            p.lat += 0.00002
            await ws.send(orjson.dumps({"id": i, "op": "location", "lat": p.lat, "lon": p.lon,
                                        "ts": ts, "speed": 5.5}).decode())
        await asyncio.sleep(0.001)
    await asyncio.sleep(0.5)
    task.cancel()
    await ws.close()
    for k, v in replies.items():
        counts[k] = counts.get(k, 0) + v


async def server_metrics(url: str) -> str:
    r, w = await asyncio.open_connection(*url.removeprefix("http://").split(":"))
    w.write(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    text = (await r.read()).decode()
    w.close()
    return text


async def accepted_on_server(url: str) -> float:
    total = 0.0
    for line in (await server_metrics(url)).splitlines():
        if line.startswith("souk_tracking_fixes_total{") and 'result="accepted"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def histogram_quantile(text: str, name: str, q: float) -> float | None:
    """The bucket bound (ms) under which `q` of the server histogram's samples fall."""
    buckets: list[tuple[float, float]] = []
    for line in text.splitlines():
        if line.startswith(name + "_bucket{"):
            le = line.split('le="')[1].split('"')[0]
            buckets.append((float("inf") if le == "+Inf" else float(le),
                            float(line.rsplit(" ", 1)[1])))
    if not buckets or buckets[-1][1] == 0:
        return None
    total = buckets[-1][1]
    return next(round(le * 1000, 1) for le, count in buckets if count >= q * total)


class LoopLag:
    """How late this (client) process's event loop runs a 50 ms timer: when it is late, the
    client, not the server, is what adds latency."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.task = asyncio.create_task(self.run())

    async def run(self) -> None:
        while True:
            t = time.monotonic()
            await asyncio.sleep(0.05)
            self.samples.append((time.monotonic() - t - 0.05) * 1000)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    dsn, redis_url = os.environ["DATABASE_URL"], os.environ["REDIS_URL"]
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    extra = {"WS_COMMAND_RATE": "100000", "WS_COMMAND_BURST": "100000",
             "TRACKING_MAX_AGE_S": "90000", "ORDER_POSITION_HZ": str(args.hz),
             "WS_MAX_CONNECTIONS": "50000"}
    os.environ.update(extra)  # start_server passes the environment on
    with tempfile.TemporaryDirectory() as key_dir:
        generate_key(Path(key_dir), "bench")
        tokens = TokenService(KeyRing.load(Path(key_dir)), "souk", "souk", 3600)
        port = free_port()
        proc = start_server(dsn, redis_url, schema, port, key_dir, 20)
        url, ws_url = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
        pool = None
        try:
            await wait_ready(url)
            pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4,
                                             server_settings={"search_path": schema})
            n = args.riders if args.mode == "watch" else args.connections
            parties = await setup(pool, tokens, n, orders=args.mode == "watch")
            return await (measure_watch(args, url, ws_url, parties, proc.pid)
                          if args.mode == "watch" else
                          measure_ingest(args, url, ws_url, parties, proc.pid))
        finally:
            proc.terminate()
            proc.wait(30)
            if pool is not None:
                await pool.close()
            await drop_schema_and_keys(dsn, redis_url, schema, f"{schema}:")


async def measure_watch(args: argparse.Namespace, url: str, ws_url: str, parties: list[Party],
                        pid: int) -> dict[str, Any]:
    watch = Watch()
    lag = LoopLag()
    until = time.time() + args.duration + 2
    watchers = [asyncio.create_task(watcher(ws_url, p, watch, until)) for p in parties]
    await asyncio.sleep(2)  # every watcher subscribed before the first fix
    before, t0 = sample(pid), time.monotonic()
    accepted0 = await accepted_on_server(url)
    await asyncio.wait_for(asyncio.gather(*(
        rider_1hz(url, ws_url, p, watch, until, args.osmand) for p in parties)),
        args.duration + 30)
    accepted = await accepted_on_server(url) - accepted0
    after, wall = sample(pid), time.monotonic() - t0
    await asyncio.wait_for(asyncio.gather(*watchers), 30)
    lag.task.cancel()
    text = await server_metrics(url)
    hist = "souk_tracking_ingest_to_publish_seconds"
    lost = sum(len(watch.sent.get(o, set()) - watch.seen.get(o, set())) for o in watch.sent)
    return {"mode": "watch", "transport": "osmand" if args.osmand else "ws",
            "riders": len(parties), "duration_s": args.duration,
            "fixes_sent": sum(len(s) for s in watch.sent.values()),
            "fixes_accepted": accepted, "replies": watch.replies,
            "positions_received": len(watch.latencies),
            "positions_lost": lost,
            "latency_ms_p50": round(pct(watch.latencies, 0.50), 1),
            "latency_ms_p99": round(pct(watch.latencies, 0.99), 1),
            "latency_ms_max": round(max(watch.latencies, default=float("nan")), 1),
            "server_cpu_pct": round(100 * (after.cpu_s - before.cpu_s) / wall, 1),
            "server_cpu_us_per_fix": round(1e6 * (after.cpu_s - before.cpu_s)
                                           / max(accepted, 1), 1),
            "mean_latency_ms": round(statistics.fmean(watch.latencies), 1)
            if watch.latencies else None,
            "server_ingest_to_publish_ms_p50_bucket": histogram_quantile(text, hist, 0.5),
            "server_ingest_to_publish_ms_p99_bucket": histogram_quantile(text, hist, 0.99),
            "client_loop_lag_ms_p50": round(pct(lag.samples, 0.5), 1),
            "client_loop_lag_ms_p99": round(pct(lag.samples, 0.99), 1)}


async def measure_ingest(args: argparse.Namespace, url: str, ws_url: str,
                         parties: list[Party], pid: int) -> dict[str, Any]:
    counts: dict[str, int] = {}
    accepted0 = await accepted_on_server(url)
    before, t0 = sample(pid), time.monotonic()
    until = time.time() + args.duration
    await asyncio.wait_for(asyncio.gather(*(
        rider_flat_out(url, ws_url, p, until, args.transport, args.window, counts)
        for p in parties)), args.duration + 30)
    after, wall = sample(pid), time.monotonic() - t0
    accepted = await accepted_on_server(url) - accepted0
    cpu = after.cpu_s - before.cpu_s
    return {"mode": "ingest", "transport": args.transport, "connections": len(parties),
            "window": args.window if args.transport == "ws" else 1,
            "wall_s": round(wall, 1), "replies": counts, "accepted": accepted,
            "accepted_per_s": round(accepted / wall), "server_cpu_pct": round(100 * cpu / wall, 1),
            "server_cpu_us_per_fix": round(1e6 * cpu / max(accepted, 1), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    w = sub.add_parser("watch")
    w.add_argument("--riders", type=int, default=500)
    w.add_argument("--osmand", action="store_true")
    i = sub.add_parser("ingest")
    i.add_argument("--transport", choices=("ws", "osmand"), default="ws")
    i.add_argument("--connections", type=int, default=100)
    i.add_argument("--window", type=int, default=16)
    for p in (w, i):
        p.add_argument("--duration", type=float, default=20.0)
        p.add_argument("--hz", type=int, default=2, help="ORDER_POSITION_HZ of the server")
    args = ap.parse_args()
    if args.duration > 300:
        raise SystemExit("--duration is capped at 300 s")
    print(orjson.dumps(asyncio.run(run(args)), option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
