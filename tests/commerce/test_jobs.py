"""Background jobs: started by the app's lifespan, and a failing pass never stops the loop."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from api.orders import jobs
from api.orders.metrics import CommerceMetrics
from core.config import Settings, SettingsError
from core.context import Runtime
from tests.commerce.helpers import assert_consistent, buy, fund, make_product, wallet
from tests.conftest import TIMING_FACTOR, Register
from tests.support.services import drop_isolation, make_settings


@pytest.fixture
async def settings(key_dir: Path) -> AsyncIterator[Settings]:
    s = make_settings(key_dir, reservation_sweep_interval_s=1, idempotency_prune_interval_s=1,
                      idempotency_keep_s=3600)
    yield s
    await drop_isolation(s)


async def test_lifespan_sweeps_expired_reservations(
    client: httpx.AsyncClient, register: Register, rt: Runtime
) -> None:
    seller, buyer = await register("seller"), await register("buyer")
    await fund(rt, buyer.id, 1_000)
    product = await make_product(client, seller, stock=1, price=1_000)
    order_id = (await buy(client, buyer, product["variants"][0]["id"])).json()["orders"][0]["id"]
    await rt.pool.execute("UPDATE orders SET reserved_until = now() WHERE id = $1",
                          uuid.UUID(order_id))
    deadline = time.monotonic() + 20 * TIMING_FACTOR
    while (await client.get(f"/v1/orders/{order_id}", headers=buyer.headers)).json()[
            "state"] != "cancelled":
        assert time.monotonic() < deadline, "the app's expiry loop never ran"
        await asyncio.sleep(0.1)
    w = await wallet(rt, buyer.id)
    assert (w.available, w.held) == (1_000, 0)
    await assert_consistent(rt.pool)
    metrics = (await client.get("/metrics")).text
    assert 'souk_commerce_job_items_total{job="reservation_expiry",outcome="done"} 1.0' in metrics
    assert 'souk_checkouts_total{outcome="ok"} 1.0' in metrics


async def test_failing_pass_does_not_stop_the_loop() -> None:
    metrics = CommerceMetrics(CollectorRegistry())
    calls = 0
    third = asyncio.Event()

    async def flaky() -> int:
        nonlocal calls
        calls += 1
        if calls == 3:
            third.set()
        if calls == 1:
            raise RuntimeError("database went away")
        return 0

    task = asyncio.create_task(jobs.run_periodically("test", 0.01, flaky, metrics))
    await asyncio.wait_for(third.wait(), 10 * TIMING_FACTOR)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert metrics.job_runs.labels("test", "error")._value.get() == 1
    assert metrics.job_runs.labels("test", "ok")._value.get() >= 2


def test_commerce_settings_are_parsed_and_bounded() -> None:
    base = {"DATABASE_URL": "postgresql://x/y", "REDIS_URL": "redis://x"}
    s = Settings.from_env({**base, "RESERVATION_TTL_S": "120", "SETTLEMENT_HOLD_S": "0"})
    assert (s.reservation_ttl_s, s.settlement_hold_s) == (120, 0)
    assert Settings.from_env(base).reservation_ttl_s == 600
    with pytest.raises(SettingsError, match="RESERVATION_TTL_S"):
        Settings.from_env({**base, "RESERVATION_TTL_S": "1"})
    with pytest.raises(SettingsError, match="SETTLEMENT_INTERVAL_S"):
        Settings.from_env({**base, "SETTLEMENT_INTERVAL_S": "soon"})


async def test_lifespan_prunes_old_idempotency_keys(client: httpx.AsyncClient, rt: Runtime) -> None:
    insert = (
        "INSERT INTO idempotency_keys (user_id, scope, key, request_hash, status_code, response,"
        " created_at) VALUES ($1, 'checkout', $2, '\\x00', 201, '{}',"
        " now() - make_interval(secs => $3))"
    )
    await rt.pool.execute(insert, uuid.uuid4(), "old", 7_200.0)  # kept 3,600 s in this module
    await rt.pool.execute(insert, uuid.uuid4(), "recent", 60.0)
    deadline = time.monotonic() + 20 * TIMING_FACTOR
    while await rt.pool.fetchval("SELECT count(*) FROM idempotency_keys WHERE key = 'old'"):
        assert time.monotonic() < deadline, "the app's idempotency pruning never ran"
        await asyncio.sleep(0.1)
    assert await rt.pool.fetchval("SELECT key FROM idempotency_keys") == "recent"
    metrics = (await client.get("/metrics")).text
    assert 'souk_commerce_job_runs_total{job="idempotency_prune",outcome="ok"}' in metrics
