"""Checkout benchmark: checkouts per second and latency percentiles against a real uvicorn.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
    REDIS_URL=redis://127.0.0.1:6379/0 \\
    .venv/bin/python -m loadtests.checkout_bench --duration 15 --concurrency 32

Without `--url` it starts `uvicorn --factory api.app:create_app` on 127.0.0.1 in a fresh schema
(dropped afterwards). Setup goes through the HTTP API (seller, product, buyers, demo top-ups,
carts). Each worker is one buyer (distinct buyers: no cart lock contention) looping
add-to-cart → checkout (→ pay with `--pay`) until the time is up.

`--hot` makes every worker buy the same variant (a flash drop with ample stock: the stock row is
the hot spot); otherwise each worker buys its own variant. The run is bounded by `--duration`
plus a fixed grace period.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from api.ledger.routes import TOPUP_MAX
from loadtests.proc_cpu import CpuMeter, load_average, tagged_dsn
from testkit.services import drop_schema_and_keys

ROOT = Path(__file__).resolve().parents[1]
FUNDS = TOPUP_MAX  # one top-up at the ledger's per-top-up cap: 100,000 checkouts of 1.00


@dataclass
class Stats:
    checkout: list[float] = field(default_factory=list)
    pay: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def start_server(dsn: str, redis_url: str, schema: str, port: int, key_dir: str,
                 pool_max: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DATABASE_URL": dsn, "REDIS_URL": redis_url, "DATABASE_SCHEMA": schema,
           "REDIS_PREFIX": f"{schema}:", "JWT_KEY_DIR": key_dir, "SOUK_ENV": "test",
           "PAYMENT_PROVIDER": "demo", "LOG_LEVEL": "WARNING", "DATABASE_POOL_MAX": str(pool_max),
           # each worker is one buyer checking out back to back: the per-buyer limits would
           # turn the run into a measurement of 429s
           "LOGIN_RATE_PER_ADDRESS": "100000", "CHECKOUT_RATE": "1000000",
           "TOPUP_RATE": "1000000"}
    return subprocess.Popen(  # noqa: S603 - fixed argv: this interpreter running uvicorn
        [sys.executable, "-m", "uvicorn", "--factory", "api.app:create_app", "--host",
         "127.0.0.1", "--port", str(port), "--loop", "uvloop", "--http", "httptools",
         "--no-access-log", "--log-level", "warning"],
        cwd=ROOT, env=env,
    )


async def wait_ready(url: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient() as c:
        while time.monotonic() < deadline:
            try:
                if (await c.get(url + "/readyz", timeout=1)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise SystemExit("server did not become ready")


async def register(c: httpx.AsyncClient, role: str) -> tuple[str, dict[str, str]]:
    email = f"{role}-{uuid.uuid4().hex[:10]}@bench.example.com"
    r = await c.post("/v1/auth/register", json={
        "email": email, "password": "bench password 123", "display_name": role, "role": role})
    r.raise_for_status()
    body = r.json()
    return body["user"]["id"], {"Authorization": f"Bearer {body['access_token']}"}


async def worker(c: httpx.AsyncClient, headers: dict[str, str], variant: str, until: float,
                 stats: Stats, pay: bool) -> None:
    while time.monotonic() < until:
        try:
            await one_purchase(c, headers, variant, stats, pay)
        except httpx.HTTPError as exc:
            stats.error(type(exc).__name__)


async def one_purchase(c: httpx.AsyncClient, headers: dict[str, str], variant: str,
                       stats: Stats, pay: bool) -> None:
    r = await c.post("/v1/cart/items", json={"variant_id": variant, "quantity": 1},
                     headers=headers)
    if r.status_code != 200:
        stats.error(f"cart {r.status_code}")
        return
    t0 = time.perf_counter()
    r = await c.post("/v1/checkout", json={},
                     headers={**headers, "Idempotency-Key": uuid.uuid4().hex})
    elapsed = time.perf_counter() - t0
    if r.status_code != 201:
        stats.error(f"checkout {r.status_code} {r.json().get('code')}")
        return
    stats.checkout.append(elapsed)
    if pay:
        order_id = r.json()["orders"][0]["id"]
        t0 = time.perf_counter()
        r = await c.post(f"/v1/orders/{order_id}/pay", headers=headers)
        if r.status_code == 200:
            stats.pay.append(time.perf_counter() - t0)
        else:
            stats.error(f"pay {r.status_code}")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    dsn, redis_url = os.environ["DATABASE_URL"], os.environ["REDIS_URL"]
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    proc: subprocess.Popen[bytes] | None = None
    url = args.url
    server_dsn, tag = tagged_dsn(dsn)
    meter = CpuMeter(dsn, tag)
    with tempfile.TemporaryDirectory() as key_dir:
        try:
            if url is None:
                from core.auth import generate_key

                generate_key(Path(key_dir), "bench")
                port = free_port()
                proc = start_server(server_dsn, redis_url, schema, port, key_dir, args.pool)
                meter.pids.append(proc.pid)
                url = f"http://127.0.0.1:{port}"
            await wait_ready(url)
            limits = httpx.Limits(max_connections=args.concurrency + 4)
            async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as c:
                _, seller = await register(c, "seller")
                skus = 1 if args.hot else min(args.concurrency, 50)  # a product holds 50
                r = await c.post("/v1/products", headers=seller, json={
                    "title": "Bench product", "variants": [
                        {"sku": f"B{i}", "price": 100, "stock": 1_000_000} for i in range(skus)]})
                r.raise_for_status()
                variants = [v["id"] for v in r.json()["variants"]]
                buyers = [await register(c, "buyer") for _ in range(args.concurrency)]
                for _, h in buyers:  # the demo payment provider credits at once
                    r = await c.post("/v1/wallet/topups", json={"amount": FUNDS},
                                     headers={**h, "Idempotency-Key": uuid.uuid4().hex})
                    r.raise_for_status()
                stats = Stats()
                await meter.start()
                load_before = load_average()
                started = time.monotonic()
                until = started + args.duration
                await asyncio.wait_for(asyncio.gather(*(
                    worker(c, h, variants[i % len(variants)], until, stats, args.pay)
                    for i, (_, h) in enumerate(buyers)
                )), args.duration + 30)
                wall = time.monotonic() - started
                await meter.stop()
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(15)
                await drop_schema_and_keys(dsn, redis_url, schema, f"{schema}:")
    return {
        "mode": "hot variant" if args.hot else "one variant per buyer",
        "concurrency": args.concurrency, "duration_s": round(wall, 1),
        "checkouts": len(stats.checkout),
        "checkouts_per_s": round(len(stats.checkout) / wall, 1),
        "checkout_p50_ms": round(pct(stats.checkout, 0.50), 1),
        "checkout_p99_ms": round(pct(stats.checkout, 0.99), 1),
        "checkout_mean_ms": round(statistics.fmean(stats.checkout) * 1000, 1)
        if stats.checkout else None,
        "pays": len(stats.pay),
        "pay_p50_ms": round(pct(stats.pay, 0.50), 1) if stats.pay else None,
        "pay_p99_ms": round(pct(stats.pay, 0.99), 1) if stats.pay else None,
        "errors": stats.errors,
        # server = the uvicorn process; postgres = its backends (by application_name); per
        # checkout (with --pay, per checkout + pay)
        **{k.replace("process", "server"): v
           for k, v in meter.report(len(stats.checkout), wall).items()},
        "load_average_before_after": f"{load_before} / {load_average()}",
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--url", help="benchmark a running server instead of starting one")
    p.add_argument("--duration", type=float, default=15.0)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--pool", type=int, default=20, help="DATABASE_POOL_MAX of the server")
    p.add_argument("--hot", action="store_true", help="all buyers buy the same variant")
    p.add_argument("--pay", action="store_true", help="pay each order after checkout")
    args = p.parse_args()
    print(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
