"""Ledger throughput benchmark: transfers per second with p50/p99 latency.

Two measurements, each bounded by --seconds, on a throw-away schema that is dropped afterwards:
1. service level: `api.ledger.service.topup` in its own transaction from --concurrency asyncpg
   connections, spread over --users wallets (plus a "one hot wallet" run where every transfer
   hits the same buyer); and hold+capture pairs (checkout-like); then the same top-ups through
   the group commit (`api.ledger.batcher.LedgerBatcher`) from --batch-concurrency callers, over
   the wallets and on one hot wallet;
2. HTTP: `POST /v1/wallet/topups` with Idempotency-Key against a real uvicorn process on
   127.0.0.1 (one worker), from --concurrency httpx clients.

Usage:
    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python -m loadtests.ledger_bench --seconds 10 --concurrency 16
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import httpx

from api.ledger import service as ledger
from api.ledger.batcher import LedgerBatcher
from core.auth import generate_key
from core.db import create_pool, migrate_dsn
from loadtests.proc_cpu import CpuMeter, load_average, tagged_dsn
from testkit.services import drop_schema_and_keys

ROOT = Path(__file__).resolve().parents[1]


def summarize(name: str, latencies: list[float], elapsed: float, per_op: int = 1,
              meter: CpuMeter | None = None) -> str:
    if not latencies:
        return f"{name}: no operations completed"
    ordered = sorted(latencies)
    p50 = statistics.median(ordered) * 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
    transfers = len(latencies) * per_op
    rate = transfers / elapsed
    line = (f"{name}: {rate:,.0f} transfers/s ({transfers} in {elapsed:.1f}s), "
            f"p50 {p50:.2f} ms, p99 {p99:.2f} ms per operation")
    if meter is not None:
        proc_ms, pg_ms = meter.per_op_ms(transfers)
        line += (f"; CPU per transfer: {meter.label} {proc_ms:.3f} ms, PostgreSQL "
                 f"{pg_ms:.3f} ms ({meter.backends} backends); load {load_average()}")
    return line


CPU_NOTES: list[str] = []


async def drive(
    seconds: float, concurrency: int, op: Callable[[int], Awaitable[None]],
    meter: CpuMeter | None = None,
) -> tuple[list[float], float]:
    latencies: list[float] = []
    if meter is not None:
        await meter.start()
    deadline = time.perf_counter() + seconds
    start = time.perf_counter()
    cpu_start = time.process_time()

    async def worker(n: int) -> None:
        i = 0
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            await op(n * 1_000_000 + i)
            latencies.append(time.perf_counter() - t0)
            i += 1

    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    elapsed = time.perf_counter() - start
    if meter is not None:
        await meter.stop()
    CPU_NOTES.append(f"{100 * (time.process_time() - cpu_start) / elapsed:.0f}%")
    return latencies, elapsed


async def service_level(pool: asyncpg.Pool, args: argparse.Namespace,
                        meter: CpuMeter) -> list[str]:
    users = [uuid.uuid4() for _ in range(args.users)]
    hot = users[0]

    async def topup_spread(i: int) -> None:
        async with pool.acquire() as conn, conn.transaction():
            await ledger.topup(conn, user_id=users[i % len(users)], amount=100, currency="USD",
                               transfer_id=uuid.uuid4())

    async def topup_hot(i: int) -> None:
        async with pool.acquire() as conn, conn.transaction():
            await ledger.topup(conn, user_id=hot, amount=100, currency="USD",
                               transfer_id=uuid.uuid4())

    async def hold_capture(i: int) -> None:
        order = uuid.uuid4()
        async with pool.acquire() as conn, conn.transaction():
            await ledger.hold_for_order(conn, buyer_id=users[i % len(users)], order_id=order,
                                        amount=1, currency="USD", transfer_id=uuid.uuid4())
        async with pool.acquire() as conn, conn.transaction():
            await ledger.capture_hold(conn, order_id=order, transfer_id=uuid.uuid4())

    out = []
    lat, elapsed = await drive(args.seconds, args.concurrency, topup_spread, meter)
    out.append(summarize(f"service topup, {args.users} wallets, c={args.concurrency}", lat,
                         elapsed, meter=meter))
    lat, elapsed = await drive(args.seconds, args.concurrency, topup_hot, meter)
    out.append(summarize(f"service topup, 1 hot wallet, c={args.concurrency}", lat, elapsed,
                         meter=meter))
    lat, elapsed = await drive(args.seconds, args.concurrency, hold_capture, meter)
    out.append(summarize(f"service hold+capture (2 transfers/op), c={args.concurrency}", lat,
                         elapsed, per_op=2, meter=meter))
    # Group commit (api.ledger.batcher): the same top-ups, many per transaction.
    batcher = LedgerBatcher(pool, max_batch=args.max_batch, writers=args.writers)
    try:
        async def batched_spread(i: int) -> None:
            await batcher.topup(user_id=users[i % len(users)], amount=100, currency="USD",
                                transfer_id=uuid.uuid4())

        async def batched_hot(i: int) -> None:
            await batcher.topup(user_id=hot, amount=100, currency="USD",
                                transfer_id=uuid.uuid4())

        conc = args.batch_concurrency
        before = batcher.batches
        lat, elapsed = await drive(args.seconds, conc, batched_spread, meter)
        out.append(summarize(f"batched topup, {args.users} wallets, c={conc}", lat, elapsed,
                             meter=meter) + f"; {len(lat) / max(1, batcher.batches - before):.0f}"
                   " transfers per batch")
        before = batcher.batches
        lat, elapsed = await drive(args.seconds, conc, batched_hot, meter)
        out.append(summarize(f"batched topup, 1 hot wallet, c={conc}", lat, elapsed,
                             meter=meter) + f"; {len(lat) / max(1, batcher.batches - before):.0f}"
                   " transfers per batch")
    finally:
        await batcher.aclose()
    report = await pool.fetchrow(
        "SELECT (SELECT sum(balance) FROM ledger_accounts) AS total, "
        "(SELECT count(*) FROM ledger_accounts WHERE balance <> "
        " (SELECT coalesce(sum(amount), 0) FROM ledger_entries e WHERE e.account_id = "
        "  ledger_accounts.id)) AS drift"
    )
    out.append(f"after the run: sum of balances {report['total']}, accounts drifted "
               f"{report['drift']}")
    return out


def server_env(dsn: str, redis_url: str, schema: str, key_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": dsn,
        "REDIS_URL": redis_url,
        "DATABASE_SCHEMA": schema,
        "REDIS_PREFIX": f"{schema}:",
        "JWT_KEY_DIR": str(key_dir),
        "PAYMENT_PROVIDER": "demo",
        "SOUK_ENV": "test",
        "LOG_LEVEL": "WARNING",
        "DATABASE_POOL_MAX": "20",
        "TOPUP_RATE": "1000000",  # each worker tops up back to back: no per-buyer limit here
        "REGISTER_RATE_PER_ADDRESS": "100000",  # --concurrency registrations from 127.0.0.1
    }


async def http_level(args: argparse.Namespace, schema: str) -> list[str]:
    port = args.port
    with tempfile.TemporaryDirectory() as tmp:
        key_dir = Path(tmp)
        generate_key(key_dir, "bench")
        server_dsn, tag = tagged_dsn(args.dsn)
        # Started once, before measuring; the command line is fixed.
        proc = subprocess.Popen(  # noqa: ASYNC220, S603
            [sys.executable, "-m", "uvicorn", "--factory", "api.app:create_app", "--host",
             "127.0.0.1", "--port", str(port), "--loop", "uvloop", "--http", "httptools",
             "--no-access-log", "--log-level", "warning"],
            cwd=ROOT, env=server_env(server_dsn, args.redis, schema, key_dir),
        )
        meter = CpuMeter(args.dsn, tag, [proc.pid], label="server")
        try:
            base = f"http://127.0.0.1:{port}"
            limits = httpx.Limits(max_connections=args.concurrency)
            async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
                for _ in range(300):
                    try:
                        if (await client.get("/healthz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.1)
                tokens = []
                for n in range(args.concurrency):
                    r = await client.post("/v1/auth/register", json={
                        "email": f"bench{n}-{uuid.uuid4().hex[:6]}@example.com",
                        "password": "benchmark password", "display_name": f"Bench {n}",
                        "role": "buyer"})
                    r.raise_for_status()
                    tokens.append(r.json()["access_token"])
                errors = 0

                async def post_topup(i: int) -> None:
                    nonlocal errors
                    token = tokens[(i // 1_000_000) % len(tokens)]
                    r = await client.post(
                        "/v1/wallet/topups", json={"amount": 100},
                        headers={"Authorization": f"Bearer {token}",
                                 "Idempotency-Key": uuid.uuid4().hex})
                    if r.status_code != 201:
                        errors += 1

                lat, elapsed = await drive(args.seconds, args.concurrency, post_topup, meter)
                line = summarize(f"HTTP POST /v1/wallet/topups, 1 uvicorn worker, "
                                 f"c={args.concurrency}", lat, elapsed, meter=meter)
                return [f"{line}; non-201 responses: {errors}"]
        finally:
            proc.terminate()
            proc.wait(timeout=30)


async def main(args: argparse.Namespace) -> None:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    await migrate_dsn(args.dsn, schema=schema)
    dsn, tag = tagged_dsn(args.dsn)
    pool = await create_pool(dsn, schema=schema, min_size=args.concurrency,
                             max_size=args.concurrency)
    meter = CpuMeter(args.dsn, tag, [os.getpid()], label="benchmark process (service + driver)")
    lines: list[str] = []
    try:
        lines += await service_level(pool, args, meter)
        if not args.skip_http:
            lines += await http_level(args, schema)
    finally:
        await pool.close()
        await drop_schema_and_keys(args.dsn, args.redis, schema, f"{schema}:")
    lines.append("benchmark client CPU per measurement (of one core): " + ", ".join(CPU_NOTES))
    print("\n".join(lines))


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dsn", default=os.environ.get("DATABASE_URL",
                                                   "postgresql://postgres@127.0.0.1:5432/postgres"))
    p.add_argument("--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--users", type=int, default=1000)
    p.add_argument("--port", type=int, default=18931)
    p.add_argument("--skip-http", action="store_true")
    p.add_argument("--batch-concurrency", type=int, default=256,
                   help="concurrent callers of the group-commit runs")
    p.add_argument("--max-batch", type=int, default=1000)
    p.add_argument("--writers", type=int, default=2)
    args = p.parse_args(argv)
    if not 0 < args.seconds <= 120 or not 0 < args.concurrency <= 256 \
            or not 0 < args.batch_concurrency <= 4096:
        p.error("--seconds must be in (0, 120], --concurrency in (0, 256] and "
                "--batch-concurrency in (0, 4096]")
    for url in (args.dsn, args.redis):
        if "127.0.0.1" not in url and "localhost" not in url:
            p.error("this benchmark only runs against services on 127.0.0.1")
    return args


if __name__ == "__main__":
    asyncio.run(main(parse()))
