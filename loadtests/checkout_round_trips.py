"""PostgreSQL statements (round trips) and Python CPU per checkout, independent of the box's load.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
    REDIS_URL=redis://127.0.0.1:6379/0 \\
    .venv/bin/python -m loadtests.checkout_round_trips --checkouts 200

Runs the app in this process (ASGI, no sockets) on a fresh schema with a one-connection pool,
logs every statement the connection sends (asyncpg's query logger) during each checkout request
(POST /v1/checkout only; the add-to-cart before it is not counted), and reports the statements
per checkout, which ones, and the process CPU per checkout request (time.process_time around
the request: Starlette, auth, rate limit, idempotency, SQL client work; no HTTP parsing).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import re
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager

from api.app import create_app
from core.auth import generate_key
from core.context import Runtime
from testkit.services import drop_isolation, make_settings


def _shape(query: str) -> str:
    return re.sub(r"\s+", " ", query).strip()[:70]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as key_dir:
        generate_key(Path(key_dir), "bench")
        settings = make_settings(Path(key_dir), database_pool_min=1, database_pool_max=1,
                                 checkout_rate=1_000_000)
        app = create_app(settings)
        try:
            async with LifespanManager(app, startup_timeout=60) as manager:
                rt: Runtime = manager._state["runtime"]
                transport = httpx.ASGITransport(app=manager.app, client=("10.0.0.1", 1234))
                async with httpx.AsyncClient(transport=transport, base_url="http://s.test") as c:
                    return await _measure(c, rt, args.checkouts)
        finally:
            await drop_isolation(settings)


async def _measure(c: httpx.AsyncClient, rt: Runtime, checkouts: int) -> dict[str, Any]:
    async def register(role: str) -> dict[str, str]:
        r = await c.post("/v1/auth/register", json={
            "email": f"{role}-{uuid.uuid4().hex[:8]}@rt.example.com",
            "password": "round trips 12345", "display_name": role, "role": role})
        r.raise_for_status()
        return {"Authorization": f"Bearer {r.json()['access_token']}"}

    seller, buyer = await register("seller"), await register("buyer")
    r = await c.post("/v1/products", headers=seller, json={
        "title": "RT", "variants": [{"sku": "RT1", "price": 100, "stock": 100_000}]})
    r.raise_for_status()
    variant = r.json()["variants"][0]["id"]
    r = await c.post("/v1/wallet/topups", json={"amount": 10_000_000},
                     headers={**buyer, "Idempotency-Key": uuid.uuid4().hex})
    r.raise_for_status()
    seen: list[str] = []
    recording = False

    def log(record: Any) -> None:
        if recording:
            seen.append(_shape(record.query))

    async with rt.pool.acquire() as conn:
        conn.add_query_logger(log)
    counts: list[int] = []
    cpu: list[float] = []
    shapes: collections.Counter[str] = collections.Counter()
    for _ in range(checkouts):
        r = await c.post("/v1/cart/items", json={"variant_id": variant, "quantity": 1},
                         headers=buyer)
        r.raise_for_status()
        await asyncio.sleep(0)
        seen.clear()
        recording = True
        t0 = time.process_time()
        r = await c.post("/v1/checkout", json={},
                         headers={**buyer, "Idempotency-Key": uuid.uuid4().hex})
        cpu.append(time.process_time() - t0)
        recording = False
        if r.status_code != 201:
            raise SystemExit(f"checkout failed: {r.status_code} {r.text}")
        mine = [q for q in seen if "FROM outbox WHERE published_at" not in q
                and "UPDATE outbox SET published_at" not in q]
        counts.append(len(mine))
        shapes.update(mine)
    return {
        "checkouts": checkouts,
        "statements_per_checkout": statistics.median(counts),
        "python_cpu_ms_per_checkout_median": round(statistics.median(cpu) * 1000, 3),
        "python_cpu_ms_per_checkout_mean": round(statistics.fmean(cpu) * 1000, 3),
        "statements": {q: round(n / checkouts, 2) for q, n in shapes.most_common()},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkouts", type=int, default=200)
    args = p.parse_args()
    if not 0 < args.checkouts <= 10_000:
        p.error("--checkouts must be 1..10000")
    result = asyncio.run(run(args))
    for k, v in result.items():
        if k == "statements":
            print("statements (per checkout):")
            for q, n in v.items():
                print(f"  {n:5}  {q}")
        else:
            print(f"{k}: {v}")


if __name__ == "__main__":
    main()
