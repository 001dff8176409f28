"""The tracking runtime of one process: builds the parts from settings, runs the background
loops (history flushing, partition upkeep and retention, stale riders, dispatch re-offers) and
offers the websocket `location` op. `api/app.py` opens it with `running_tracking()`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec
import redis.asyncio as aioredis

from core.auth import Principal, Role
from core.config import Settings
from core.db import DATABASE_ERRORS
from core.errors import Forbidden, Unauthorized, ValidationFailed
from core.http import validation_field_error
from core.outbox import OutboxEvent
from core.redis_client import REDIS_ERRORS
from core.tasks import stop
from tracking import history
from tracking.devices import Devices
from tracking.dispatch import DispatchConfig, Dispatcher
from tracking.history import HistoryWriter
from tracking.ingest import Ingest, IngestConfig, Publish
from tracking.live import Live, OnlineRider
from tracking.metrics import TrackingMetrics
from tracking.model import Fix, Limits, online_since_ms
from tracking.ports import Orders

log = logging.getLogger("souk.tracking")
MAINTENANCE_S = 30.0
SWEEP_S = 1.0
OVER_STATES = frozenset({"delivered", "cancelled", "refunded"})


class LocationFrame(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The websocket `location` op: `{"id", "op": "location", "lat", "lon", "ts"?, ...}`
    (speed in m/s, `ts` in epoch ms, default now). `rider_id`, when given, must be the
    caller's own."""

    id: int
    op: str
    lat: float
    lon: float
    ts: int | None = None
    speed: float | None = None
    heading: float | None = None
    accuracy: float | None = None
    altitude: float | None = None
    rider_id: uuid.UUID | None = None


def limits_of(s: Settings) -> Limits:
    return Limits(max_speed_mps=float(s.tracking_max_speed_mps),
                  max_accuracy_m=float(s.tracking_max_accuracy_m),
                  future_tolerance_ms=s.tracking_future_tolerance_s * 1000,
                  max_age_ms=s.tracking_max_age_s * 1000)


@dataclass
class Tracking:
    settings: Settings
    pool: asyncpg.Pool
    devices: Devices
    live: Live
    history: HistoryWriter
    ingest: Ingest
    dispatcher: Dispatcher
    orders: Orders
    metrics: TrackingMetrics

    def location_op(self) -> Callable[[Principal | None, dict[str, Any]],
                                      Awaitable[dict[str, Any]]]:
        async def op(principal: Principal | None, frame: dict[str, Any]) -> dict[str, Any]:
            if principal is None:
                raise Unauthorized("Sign in to report locations.")
            if principal.role is not Role.RIDER:
                self.metrics.refused.labels("forbidden").inc()
                raise Forbidden("Only riders report locations.")
            try:
                f = msgspec.convert(frame, LocationFrame, strict=False)
            except msgspec.ValidationError as exc:
                self.metrics.refused.labels("malformed").inc()
                raise ValidationFailed([validation_field_error(str(exc))]) from None
            if f.rider_id is not None and f.rider_id != principal.user_id:
                self.metrics.refused.labels("forbidden").inc()
                raise Forbidden("A rider reports only their own location.")
            fix = Fix(f.lat, f.lon, f.ts if f.ts is not None else int(time.time() * 1000),
                      f.speed, f.heading, f.accuracy, f.altitude)
            [result] = await self.ingest.report(principal.user_id, [fix], "ws")
            return {"accepted": True} if result == "accepted" else \
                {"accepted": False, "reason": result}

        return op

    async def riders_online(self, now_ms: int, limit: int
                            ) -> tuple[int, list[OnlineRider], dict[uuid.UUID, str]]:
        """Riders heard from within TRACKING_OFFLINE_S (most recent first, at most `limit`),
        how many in all, and their display names."""
        since = online_since_ms(now_ms, self.settings.tracking_offline_s)
        total, riders = await self.live.online(since, limit)
        names = await self.orders.display_names([r.rider_id for r in riders])
        return total, riders, names

    async def on_order_event(self, event: OutboxEvent) -> None:
        """Outbox handler: an order changed state or rider, so its rider's cached assignment
        is stale (the next fix reloads it); a finished order stops publishing."""
        if event.topic not in ("order.state_changed", "order.rider_assigned"):
            return
        order_id = uuid.UUID(event.payload["order_id"])
        if event.payload.get("to") in OVER_STATES:
            self.ingest.order_over(order_id)
        facts = await self.orders.facts(self.pool, order_id)
        riders = {facts.rider_id} if facts and facts.rider_id else set()
        if event.payload.get("rider_id"):
            riders.add(uuid.UUID(event.payload["rider_id"]))
        for rider in riders:
            await self.live.forget_job(rider)
        if (self.settings.dispatch_on_packed and event.payload.get("to") == "packed"
                and facts is not None and facts.rider_id is None):
            await self._auto_dispatch(facts.id, facts.seller_id)

    async def _auto_dispatch(self, order_id: uuid.UUID, seller_id: uuid.UUID) -> None:
        try:
            pickup = await self.dispatcher.pickup_of(seller_id, None)
            await self.dispatcher.dispatch(order_id, pickup=pickup, radius_m=None,
                                           queue_if_none=True)
        except ValidationFailed:
            log.warning("automatic dispatch skipped: the seller has no pickup yet",
                        extra={"order_id": str(order_id)})
        except Exception:
            log.exception("automatic dispatch failed", extra={"order_id": str(order_id)})

    async def maintain(self) -> None:
        """Partitions ahead, retention, stale riders off the map, the online gauge."""
        s = self.settings
        today = datetime.now(UTC).date()
        back = s.tracking_max_age_s // 86_400 + 1
        async with self.pool.acquire() as conn:
            await history.ensure_partitions(
                conn, [today + timedelta(days=d) for d in range(-back, 3)])
            await history.drop_older_than(conn, today - timedelta(days=s.tracking_keep_days))
        online = await self.live.prune(int(time.time() * 1000) - s.tracking_offline_s * 1000)
        self.metrics.online.set(online)
        self.ingest.prune()

    async def _loop(self, name: str, every_s: float, work: Callable[[], Awaitable[Any]]) -> None:
        while True:
            try:
                await work()
            except (*DATABASE_ERRORS, *REDIS_ERRORS) as exc:
                log.warning("tracking job failed", extra={"job": name, "error": repr(exc)})
            except Exception:
                log.exception("tracking job crashed", extra={"job": name})
            await asyncio.sleep(every_s)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Tracking]:
        tasks = [
            asyncio.create_task(self.history.run(), name="tracking-history"),
            asyncio.create_task(self._loop("maintain", MAINTENANCE_S, self.maintain),
                                name="tracking-maintain"),
            asyncio.create_task(self._loop("dispatch", SWEEP_S, self.dispatcher.sweep),
                                name="tracking-dispatch"),
        ]
        try:
            yield self
        finally:
            await stop(*tasks)
            try:
                await self.history.flush()  # what is buffered goes to the database on shutdown
            except DATABASE_ERRORS as exc:
                log.error("history lost at shutdown", extra={"rows": self.history.pending,
                                                             "error": repr(exc)})


def build(settings: Settings, pool: asyncpg.Pool, redis: aioredis.Redis, orders: Orders,
          publish: Publish, metrics: TrackingMetrics) -> Tracking:
    s = settings
    live = Live(redis, s.redis_prefix)
    writer = HistoryWriter(pool, metrics, interval_s=s.tracking_flush_ms / 1000,
                           batch_rows=s.tracking_flush_rows, max_rows=s.tracking_buffer_rows)
    ingest = Ingest(pool=pool, live=live, history=writer, orders=orders, publish=publish,
                    metrics=metrics, config=IngestConfig(
                        limits=limits_of(s), position_hz=s.order_position_hz,
                        geofence_m=float(s.tracking_geofence_m),
                        min_eta_speed_mps=s.tracking_min_eta_speed_mps))
    dispatcher = Dispatcher(pool, live, orders, metrics, DispatchConfig(
        fanout=s.dispatch_fanout, radius_m=s.dispatch_radius_m,
        max_radius_m=s.dispatch_max_radius_m, widen=s.dispatch_widen,
        offer_ttl_s=s.dispatch_offer_ttl_s, max_rounds=s.dispatch_max_rounds,
        offline_s=s.tracking_offline_s))
    return Tracking(s, pool, Devices(pool, redis, s.redis_prefix), live, writer, ingest,
                    dispatcher, orders, metrics)
