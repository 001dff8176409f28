"""Position history: written in batches (COPY), partitioned by day, readable, and dropped whole
by retention."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
from prometheus_client import CollectorRegistry

from core.context import Runtime
from tests.conftest import Register
from tests.tracking.helpers import android_query, poll
from tracking import history
from tracking.history import HistoryWriter, row_of
from tracking.metrics import TrackingMetrics
from tracking.model import Fix


async def test_batches_partitions_reads_and_retention(rt: Runtime, register: Register) -> None:
    rider = uuid.UUID((await register("rider")).id)
    metrics = TrackingMetrics(CollectorRegistry())
    writer = HistoryWriter(rt.pool, metrics, interval_s=0.05, batch_rows=100, max_rows=10_000)
    now = datetime.now(UTC).replace(microsecond=0)
    old = now - timedelta(days=40)
    now_ms = int(now.timestamp() * 1000)
    for i in range(250):
        writer.add(row_of(rider, Fix(52.5 + i * 1e-5, 13.4, now_ms - (250 - i) * 1000), now_ms))
    for i in range(30):
        ts = int(old.timestamp() * 1000) + i * 1000
        writer.add(row_of(rider, Fix(48.8, 2.3, ts), ts))
    assert await writer.flush() == 280
    # 280 rows in 3 COPY batches of at most 100, not 280 INSERTs.
    assert metrics.history_batches._value.get() == 3
    assert metrics.history_rows._value.get() == 280
    days = await history.partitions(rt.pool)
    assert history.day_of(now) in days and history.day_of(old) in days

    recent = await history.track(rt.pool, rider, since=now - timedelta(minutes=10), until=None,
                                 limit=1000)
    assert len(recent) == 250
    assert [r["ts"] for r in recent] == sorted(r["ts"] for r in recent)
    assert recent[0]["lat"] == 52.5

    async with rt.pool.acquire() as conn:
        dropped = await history.drop_older_than(conn, history.day_of(now) - timedelta(days=30))
    assert dropped == [history.day_of(old)]
    assert history.day_of(old) not in await history.partitions(rt.pool)
    everything = await history.track(rt.pool, rider, since=old - timedelta(days=1), until=None,
                                     limit=1000)
    assert len(everything) == 250  # the old day went whole; today's rows are intact


async def test_admin_reads_a_riders_track_and_others_do_not(
    client: httpx.AsyncClient, rt: Runtime, register: Register
) -> None:
    rider, other, admin = await register("rider"), await register("rider"), await register("admin")
    r = await client.post("/v1/tracking/devices", json={}, headers=rider.headers)
    key = r.json()["key"]
    base = datetime.now(UTC).timestamp() - 100
    for i in range(5):
        r = await client.post("/v1/tracking/osmand",
                              params=android_query(key, 52.52 + i * 0.0005, 13.405, base + i * 10))
        assert r.status_code == 200

    async def five() -> list[object] | None:
        r = await client.get(f"/v1/tracking/riders/{rider.id}/track", headers=admin.headers)
        assert r.status_code == 200
        found: list[object] = r.json()["positions"]
        return found if len(found) == 5 else None

    await poll(five)
    r = await client.get(f"/v1/tracking/riders/{rider.id}/track", headers=other.headers)
    assert r.status_code == 403
    r = await client.get(f"/v1/tracking/riders/{rider.id}/track", headers=rider.headers)
    assert len(r.json()["positions"]) == 5


async def test_track_query_parameters_are_typed(client: httpx.AsyncClient,
                                                register: Register) -> None:
    rider = await register("rider")
    url = f"/v1/tracking/riders/{rider.id}/track"
    for good in ({}, {"minutes": "", "limit": ""}, {"minutes": "10080", "limit": "5000"},
                 {"minutes": "1", "limit": "1"}):
        r = await client.get(url, params=good, headers=rider.headers)
        assert r.status_code == 200, (good, r.text)
    for bad in ({"minutes": "0"}, {"minutes": "10081"}, {"limit": "5001"}, {"limit": "-1"},
                {"limit": "1.5"}, {"minutes": "abc"}, {"limit": "\u0661"}):
        r = await client.get(url, params=bad, headers=rider.headers)
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["code"] == "validation_failed"
