"""Flash drop benchmark: N buyers, K units, two server processes — exactly min(N, K) orders.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
    REDIS_URL=redis://127.0.0.1:6379/0 \\
    .venv/bin/python -m loadtests.flash_drop_bench --buyers 5000 --units 100 --servers 2

Starts `--servers` uvicorn processes on 127.0.0.1 sharing one fresh schema (dropped
afterwards). The buyers are seeded straight into the database (users, access tokens minted with
the servers' key, wallets funded through the ledger's group commit, one unit of the drop in each
cart): registering 5,000 users through argon2 would measure password hashing. Then every buyer
POSTs /v1/checkout once, at most `--in-flight` at a time, alternating between the servers. It
checks the outcome — exactly min(N, K) 201s and orders, every other answer 409 out_of_stock,
`reserved` on the variant equal to the orders, the ledger audit clean — and reports latency
percentiles and the servers' and their PostgreSQL backends' CPU per checkout (/proc).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from api.ledger import store as ledger_store
from api.ledger.batcher import LedgerBatcher
from core.auth import KeyRing, Role, TokenService, generate_key
from core.db import create_pool, migrate_dsn
from loadtests.checkout_bench import free_port, pct, start_server, wait_ready
from loadtests.proc_cpu import CpuMeter, load_average, tagged_dsn
from testkit.services import drop_schema_and_keys

PRICE = 1_000


async def seed(pool: asyncpg.Pool, buyers: int, units: int) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """A seller with one published variant of `units`, and `buyers` funded buyers each with
    one unit in the cart. Returns (variant id, buyer ids)."""
    seller, ids = uuid.uuid4(), [uuid.uuid4() for _ in range(buyers)]
    await pool.execute(
        """INSERT INTO users (id, email, email_normalized, password_hash, display_name, role)
           SELECT u, e, e, '!', 'Flash buyer', r
           FROM unnest($1::uuid[], $2::text[], $3::text[]) AS x(u, e, r)""",
        [seller, *ids], [f"{u.hex}@flash.example.com" for u in (seller, *ids)],
        ["seller"] + ["buyer"] * buyers)
    product = await pool.fetchval(
        "INSERT INTO products (seller_id, title, currency) VALUES ($1, 'Flash drop', 'USD') "
        "RETURNING id", seller)
    variant: uuid.UUID = await pool.fetchval(
        "INSERT INTO variants (product_id, sku, price, on_hand) VALUES ($1, 'DROP', $2, $3) "
        "RETURNING id", product, PRICE, units)
    batcher = LedgerBatcher(pool, max_batch=500)
    try:
        await asyncio.gather(*(batcher.topup(user_id=u, amount=PRICE, currency="USD",
                                             transfer_id=uuid.uuid4()) for u in ids))
    finally:
        await batcher.aclose()
    await pool.execute(
        "INSERT INTO cart_items (buyer_id, variant_id, quantity) "
        "SELECT u, $2, 1 FROM unnest($1::uuid[]) AS u", ids, variant)
    return variant, ids


async def run(args: argparse.Namespace) -> dict[str, Any]:
    dsn, redis_url = os.environ["DATABASE_URL"], os.environ["REDIS_URL"]
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    await migrate_dsn(dsn, schema=schema)
    procs: list[subprocess.Popen[bytes]] = []
    server_dsn, tag = tagged_dsn(dsn)
    meter = CpuMeter(dsn, tag)
    pool = await create_pool(dsn, schema=schema, min_size=2, max_size=8)
    try:
        with tempfile.TemporaryDirectory() as key_dir:
            generate_key(Path(key_dir), "bench")
            tokens = TokenService(KeyRing.load(Path(key_dir)), "souk", "souk", 3_600)
            urls = []
            for _ in range(args.servers):
                port = free_port()
                procs.append(start_server(server_dsn, redis_url, schema, port, key_dir,
                                          args.pool))
                urls.append(f"http://127.0.0.1:{port}")
            meter.pids.extend(p.pid for p in procs)
            variant, buyers = await seed(pool, args.buyers, args.units)
            for url in urls:
                await wait_ready(url)
            headers = [{"Authorization": f"Bearer {tokens.issue(b, Role.BUYER)}",
                        "Idempotency-Key": uuid.uuid4().hex} for b in buyers]
            limits = httpx.Limits(max_connections=args.in_flight)
            clients = [httpx.AsyncClient(base_url=u, timeout=60, limits=limits) for u in urls]
            gate = asyncio.Semaphore(args.in_flight)
            latencies: list[float] = []
            codes: dict[str, int] = {}

            retried = 0

            async def buy(i: int) -> None:
                nonlocal retried
                async with gate:
                    t0 = time.perf_counter()
                    for attempt in range(3):
                        try:
                            r = await clients[i % len(clients)].post(
                                "/v1/checkout", json={}, headers=headers[i])
                            break
                        except httpx.TransportError:
                            # a kept-alive connection the server closed as it was reused (a
                            # loaded box): the same Idempotency-Key makes the retry safe
                            if attempt == 2:
                                raise
                            retried += 1
                    latencies.append(time.perf_counter() - t0)
                key = str(r.status_code) if r.status_code == 201 else \
                    f"{r.status_code} {r.json().get('code')}"
                codes[key] = codes.get(key, 0) + 1

            load_before = load_average()
            await meter.start()
            started = time.monotonic()
            await asyncio.wait_for(asyncio.gather(*(buy(i) for i in range(len(buyers)))), 300)
            wall = time.monotonic() - started
            await meter.stop()
            for c in clients:
                await c.aclose()
            orders = await pool.fetchval("SELECT count(*) FROM orders")
            reserved = await pool.fetchval("SELECT reserved FROM variants WHERE id = $1", variant)
            audit = await ledger_store.audit(pool)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(15)
        await pool.close()
        await drop_schema_and_keys(dsn, redis_url, schema, f"{schema}:")
    expected = min(args.buyers, args.units)
    exact = (codes.get("201") == expected and orders == expected and reserved == expected
             and codes.get("409 out_of_stock", 0) == args.buyers - expected and audit["ok"])
    return {
        "buyers": args.buyers, "units": args.units, "servers": args.servers,
        "in_flight": args.in_flight, "exact": exact, "answers": codes, "orders": orders,
        "transport_retries": retried,
        "reserved": reserved, "ledger_audit_ok": audit["ok"], "duration_s": round(wall, 2),
        "checkouts_per_s": round(args.buyers / wall, 1),
        "p50_ms": round(pct(latencies, 0.50), 1), "p95_ms": round(pct(latencies, 0.95), 1),
        "p99_ms": round(pct(latencies, 0.99), 1),
        **{k.replace("process", "servers"): v for k, v in meter.report(args.buyers, wall).items()},
        "load_average_before_after": f"{load_before} / {load_average()}",
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--buyers", type=int, default=5_000)
    p.add_argument("--units", type=int, default=100)
    p.add_argument("--servers", type=int, default=2)
    p.add_argument("--in-flight", type=int, default=64, help="checkouts outstanding at once")
    p.add_argument("--pool", type=int, default=20, help="DATABASE_POOL_MAX of each server")
    args = p.parse_args()
    if not (0 < args.buyers <= 20_000 and args.units > 0 and 1 <= args.servers <= 4
            and 0 < args.in_flight <= 512):
        p.error("--buyers 1..20000, --units > 0, --servers 1..4, --in-flight 1..512")
    result = asyncio.run(run(args))
    print(result)
    if not result["exact"]:
        raise SystemExit("the flash drop was NOT exact")


if __name__ == "__main__":
    main()
