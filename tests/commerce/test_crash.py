"""Crashes between steps leave nothing half-written: processes are SIGKILLed in the middle of a
checkout transaction and in the middle of a burst of checkouts and payments."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx

from api.orders import jobs
from api.orders.metrics import CommerceMetrics
from core.auth import Role
from core.config import Settings
from core.context import Runtime
from tests.commerce.helpers import add_to_cart, assert_consistent, fund, make_product, wallet
from tests.conftest import TIMING_FACTOR, Register
from tests.support.servers import ROOT, ServerProcess


def _named(dsn: str, name: str) -> str:
    """The DSN with an application_name, so the test can see that process's sessions."""
    return f"{dsn}{'&' if '?' in dsn else '?'}application_name={name}"


async def _wait_sessions_gone(rt: Runtime, name: str) -> None:
    """PostgreSQL rolls back a dead client's open transaction when it notices the closed
    socket; wait for that (a condition, not a timing assumption)."""
    deadline = time.monotonic() + 30 * TIMING_FACTOR
    while await rt.pool.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", name
    ):
        assert time.monotonic() < deadline, "the killed process's sessions never ended"
        await asyncio.sleep(0.05)


async def test_sigkill_mid_checkout_transaction(
    client: httpx.AsyncClient, register: Register, rt: Runtime, settings: Settings,
    tmp_path: Path,
) -> None:
    seller, buyer = await register("seller"), await register("buyer")
    await fund(rt, buyer.id, 5_000)
    product = await make_product(client, seller, stock=1, price=1_000)
    variant = product["variants"][0]["id"]
    await add_to_cart(client, buyer, variant)
    name = f"crash-{uuid.uuid4().hex[:8]}"
    errors = tmp_path / "crash.err"
    with errors.open("wb") as err, subprocess.Popen(  # noqa: ASYNC220 - killed below
        [sys.executable, "-m", "tests.commerce.crash_checkout",
         _named(settings.database_url, name), settings.database_schema, buyer.id],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=err, env=os.environ.copy(),
    ) as proc:
        try:
            assert proc.stdout is not None
            line = await asyncio.to_thread(proc.stdout.readline)
            assert line.strip() == b"HELD", errors.read_text()
            # Mid-transaction: the uncommitted order and hold are invisible to everyone else.
            assert await rt.pool.fetchval("SELECT count(*) FROM orders") == 0
            proc.send_signal(signal.SIGKILL)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
    await _wait_sessions_gone(rt, name)

    assert await rt.pool.fetchval("SELECT count(*) FROM orders") == 0
    assert await rt.pool.fetchval("SELECT count(*) FROM order_events") == 0
    assert await rt.pool.fetchval(
        "SELECT count(*) FROM outbox WHERE topic LIKE 'order.%'") == 0
    w = await wallet(rt, buyer.id)
    assert (w.available, w.held) == (5_000, 0)
    stock = await rt.pool.fetchrow("SELECT on_hand, reserved, sold FROM variants")
    assert dict(stock) == {"on_hand": 1, "reserved": 0, "sold": 0}
    await assert_consistent(rt.pool)
    # Nothing stays locked and the cart survived: the buyer checks out normally.
    r = await client.post("/v1/checkout", json={},
                          headers={**buyer.headers, "Idempotency-Key": "after-crash"})
    assert r.status_code == 201, r.text
    await assert_consistent(rt.pool)


async def test_server_killed_during_checkout_burst(
    client: httpx.AsyncClient, register: Register, rt: Runtime, settings: Settings,
    servers: Callable[..., ServerProcess], tmp_path: Path,
) -> None:
    seller = await register("seller")
    product = await make_product(client, seller, stock=15, price=700)
    variant = product["variants"][0]["id"]
    ids = [r["id"] for r in await rt.pool.fetch(
        """INSERT INTO users (email, email_normalized, password_hash, display_name, role)
           SELECT 'burst' || i || '@example.com', 'burst' || i || '@example.com', 'x', 'B', 'buyer'
           FROM generate_series(1, 40) AS i RETURNING id""")]
    headers = {i: {"Authorization": f"Bearer {rt.tokens.issue(i, Role.BUYER)}"} for i in ids}
    for i in ids:
        await fund(rt, i, 1_000)
        await rt.pool.execute(
            "INSERT INTO cart_items (buyer_id, variant_id, quantity) VALUES ($1, $2, 1)",
            i, uuid.UUID(variant))
    name = f"crashsrv-{uuid.uuid4().hex[:8]}"
    server = servers(DATABASE_URL=_named(settings.database_url, name))
    answered = 0
    enough = asyncio.Event()

    async def shop(http: httpx.AsyncClient, buyer: uuid.UUID) -> None:
        nonlocal answered
        try:
            r = await http.post("/v1/checkout", json={},
                                headers={**headers[buyer], "Idempotency-Key": "burst"})
            if r.status_code == 201:
                order_id = r.json()["orders"][0]["id"]
                await http.post(f"/v1/orders/{order_id}/pay", headers=headers[buyer])
                answered += 1
                if answered >= 4:  # some orders paid, others pending or in flight: kill now
                    enough.set()
        except httpx.HTTPError:
            pass  # the server died under this request

    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        tasks = [asyncio.create_task(shop(http, i)) for i in ids]
        await asyncio.wait_for(enough.wait(), 60 * TIMING_FACTOR)
        server.kill()
        await asyncio.gather(*tasks)
    await _wait_sessions_gone(rt, name)

    await assert_consistent(rt.pool)
    states = dict(await rt.pool.fetch("SELECT state, count(*) FROM orders GROUP BY state"))
    assert sum(states.values()) <= 15
    # Whatever was left pending is released by the expiry job: stock and money come back.
    await rt.pool.execute(
        "UPDATE orders SET reserved_until = now() WHERE state = 'pending_payment'"
    )
    metrics = CommerceMetrics(rt.metrics.registry.__class__())
    await jobs.expire_reservations(rt.pool, metrics, batch=100)
    await assert_consistent(rt.pool)
    stock = await rt.pool.fetchrow("SELECT on_hand, reserved, sold FROM variants")
    assert stock["reserved"] == 0
    assert stock["sold"] == states.get("paid", 0)
    assert stock["on_hand"] + stock["sold"] == 15
    held = await rt.pool.fetchval(
        "SELECT coalesce(sum(balance), 0) FROM ledger_accounts WHERE kind = 'buyer_held'")
    assert held == 0
