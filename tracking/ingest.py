"""Accepting fixes: the filters, the live view, the history buffer, and — while the rider's
order is out for delivery — `rider.position` on `order:{id}` plus geofence events.

Both transports (the websocket `location` op and OsmAnd over HTTP) end in `Ingest.report`.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import asyncpg

from core.outbox import add_event
from tracking.filters import check
from tracking.geo import blend_speed, distance_m, eta_s
from tracking.history import HistoryWriter, row_of
from tracking.live import Assignment, Live, RiderState
from tracking.metrics import TrackingMetrics
from tracking.model import Fix, Limits
from tracking.ports import Orders

log = logging.getLogger("souk.tracking")

Publish = Callable[[str, dict[str, Any], str], Awaitable[None]]
ACCEPTED = "accepted"
POSITION_KEY = "rider"  # latest-value key of rider.position on an order channel
PICKUP_STATES = frozenset({"paid", "packed"})
DELIVERING = "out_for_delivery"
MAX_LOCAL = 200_000  # riders whose last fix a process remembers (then it starts over)


@dataclass(frozen=True, slots=True)
class IngestConfig:
    limits: Limits
    position_hz: float
    geofence_m: float
    min_eta_speed_mps: float
    job_cache_s: int = 30


class Ingest:
    def __init__(self, *, pool: asyncpg.Pool, live: Live, history: HistoryWriter,
                 orders: Orders, publish: Publish, metrics: TrackingMetrics,
                 config: IngestConfig) -> None:
        self.pool = pool
        self.live = live
        self.history = history
        self.orders = orders
        self.publish = publish
        self.metrics = metrics
        self.config = config
        self._last_pub: dict[uuid.UUID, float] = {}
        self._pending: dict[uuid.UUID, tuple[dict[str, Any], float]] = {}
        self._fired: set[tuple[uuid.UUID, str]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._local: dict[uuid.UUID, RiderState] = {}

    async def report(self, rider: uuid.UUID, fixes: tuple[Fix, ...] | list[Fix],
                     transport: str) -> list[str]:
        """Judge and record a rider's fixes; one result per fix (`accepted` or the reason).

        The rider's last accepted fix is remembered by this process after each report, so a
        rider reporting to one process costs one Redis round trip per fix; the write is
        conditional on Redis still holding that fix (`Live.save`), so a fix accepted by another
        process meanwhile (or a Redis that lost its data) makes this one re-read and re-judge."""
        started = time.perf_counter()
        now_ms = int(time.time() * 1000)
        st = self._local.get(rider)
        for _ in range(3):
            if st is None:
                st = await self.live.state(rider)
                if st.available is None:
                    st = replace(st, available=bool(await self.pool.fetchval(
                        "SELECT available FROM tracking_riders WHERE rider_id = $1", rider)))
            results, kept, ewma = self._judge(fixes, st, now_ms)
            if not kept:
                break
            saved = await self.live.save(rider, kept[-1], judged_against=st.last, ewma=ewma,
                                         available=bool(st.available), now_ms=now_ms)
            if saved is not None:
                st = saved
                break
            st = None  # judged against a stale last fix: read again
        else:
            raise RuntimeError("the rider's position kept changing under this report")
        if len(self._local) >= MAX_LOCAL:
            self._local.clear()
        self._local[rider] = st
        for result in results:
            self.metrics.fixes.labels(transport, result).inc()
        if not kept:
            return results
        for fix in kept:
            self.history.add(row_of(rider, fix, now_ms))
        job = st.job
        if not st.job_known:
            job = await self.orders.assignment(rider)
            await self.live.cache_job(rider, job, self.config.job_cache_s)
        if job is not None:
            await self._on_job(rider, job, kept[-1], ewma, started)
        return results

    def _judge(self, fixes: tuple[Fix, ...] | list[Fix], st: RiderState,
               now_ms: int) -> tuple[list[str], list[Fix], float | None]:
        last, ewma = st.last, st.ewma
        results: list[str] = []
        kept: list[Fix] = []
        for fix in fixes:
            reason = check(fix, last, now_ms, self.config.limits)
            if reason is not None:
                results.append(reason.value)
                continue
            ewma = blend_speed(ewma, _speed(fix, last))
            kept.append(fix)
            last = fix
            results.append(ACCEPTED)
        return results, kept, ewma

    async def _on_job(self, rider: uuid.UUID, job: Assignment, fix: Fix, ewma: float | None,
                      started: float) -> None:
        cfg = self.config
        if job.state == DELIVERING:
            payload: dict[str, Any] = {"type": "rider.position", "lat": fix.lat, "lon": fix.lon,
                                       "ts": fix.ts_ms}
            if fix.speed_mps is not None:
                payload["speed"] = round(fix.speed_mps, 2)
            if fix.heading is not None:
                payload["heading"] = fix.heading
            remaining = None
            if job.dropoff is not None:
                remaining = distance_m(fix.lat, fix.lon, *job.dropoff)
                eta = eta_s(remaining, ewma, min_speed_mps=cfg.min_eta_speed_mps)
                if eta is not None:
                    payload["eta_s"] = eta
            # The position first: the geofence event commits to PostgreSQL.
            await self._position(job.order_id, payload, started)
            if remaining is not None and remaining <= cfg.geofence_m:
                await self._geofence(job.order_id, rider, "arriving", fix)
        elif job.state in PICKUP_STATES and job.pickup is not None and (
            distance_m(fix.lat, fix.lon, *job.pickup) <= cfg.geofence_m
        ):
            await self._geofence(job.order_id, rider, "near_pickup", fix)

    async def _position(self, order_id: uuid.UUID, payload: dict[str, Any],
                        started: float) -> None:
        """Publish now, or — within 1/ORDER_POSITION_HZ of the last one — keep only the newest
        and publish it when the interval is over."""
        now = time.monotonic()
        gap = 1.0 / self.config.position_hz
        last = self._last_pub.get(order_id)
        if last is None or now - last >= gap:
            self._last_pub[order_id] = now
            await self._send(order_id, payload, started)
            return
        waiting = order_id in self._pending
        self._pending[order_id] = (payload, started)
        if not waiting:
            task = asyncio.get_running_loop().create_task(self._later(order_id, last + gap - now))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _later(self, order_id: uuid.UUID, delay: float) -> None:
        await asyncio.sleep(delay)
        item = self._pending.pop(order_id, None)
        if item is None:
            return
        self._last_pub[order_id] = time.monotonic()
        try:
            await self._send(order_id, *item)
        except Exception:  # a lost live position only: the next fix publishes again
            log.warning("rider.position publication failed", exc_info=True)

    async def _send(self, order_id: uuid.UUID, payload: dict[str, Any], started: float) -> None:
        await self.publish(f"order:{order_id}", payload, POSITION_KEY)
        self.metrics.published.inc()
        self.metrics.publish_latency.observe(time.perf_counter() - started)

    async def _geofence(self, order_id: uuid.UUID, rider: uuid.UUID, kind: str,
                        fix: Fix) -> None:
        if (order_id, kind) in self._fired:
            return
        async with self.pool.acquire() as conn, conn.transaction():
            new = await conn.fetchval(
                """INSERT INTO tracking_geofence_events (order_id, kind, rider_id)
                   VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING true""",
                order_id, kind, rider)
            if new:
                topic = "order.rider_near_pickup" if kind == "near_pickup" else \
                    "order.rider_arriving"
                await add_event(conn, topic, {
                    "type": topic, "order_id": str(order_id), "rider_id": str(rider),
                    "lat": fix.lat, "lon": fix.lon, "ts": fix.ts_ms,
                }, channels=[f"order:{order_id}"])
        if new:
            self.metrics.geofence.labels(kind).inc()
        self._fired.add((order_id, kind))

    def order_over(self, order_id: uuid.UUID) -> None:
        """Forget an order's publishing state (delivered, cancelled or refunded)."""
        self._last_pub.pop(order_id, None)
        self._pending.pop(order_id, None)
        self._fired.discard((order_id, "near_pickup"))
        self._fired.discard((order_id, "arriving"))

    def prune(self, older_than_s: float = 3600.0) -> None:
        """Drop publishing state of orders not published for an hour (bounded memory)."""
        cutoff = time.monotonic() - older_than_s
        for order_id in [o for o, t in self._last_pub.items() if t < cutoff]:
            self.order_over(order_id)
        if len(self._fired) > 100_000:
            self._fired.clear()


def _speed(fix: Fix, last: Fix | None) -> float | None:
    if fix.speed_mps is not None:
        return fix.speed_mps
    if last is None or fix.ts_ms <= last.ts_ms:
        return None
    return distance_m(last.lat, last.lon, fix.lat, fix.lon) / ((fix.ts_ms - last.ts_ms) / 1000)
