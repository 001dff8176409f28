"""Dispatch: offer an order to the nearest available riders, the first to accept gets it.

- `dispatch()` finds available riders heard from within TRACKING_OFFLINE_S inside the radius
  (Redis GEOSEARCH, nearest first), records at most DISPATCH_FANOUT offers and a job, and tells
  each rider on `user:{id}` (outbox: sent after commit, never for a rolled-back offer).
- `accept()` runs in one transaction that first locks the order row, so concurrent accepts —
  on any number of server processes — are serialised: the first marks its offer `accepted`
  and makes the rider the order's rider, the others find a winner (`offer_taken`) or an
  expired offer (`offer_expired`). A unique index on the accepted offer per order backs it.
- `sweep()` (every process, every second) picks jobs whose offers ran out unanswered (rows
  locked with SKIP LOCKED, so each job is handled by one process), expires those offers and
  offers the job again in a radius DISPATCH_WIDEN_PERCENT wider (up to DISPATCH_MAX_RADIUS_M)
  to riders not offered yet, until DISPATCH_MAX_ROUNDS; then the job fails and the seller is
  told (`dispatch.failed` on `user:{seller}`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

import asyncpg

from core.db import rows_affected
from core.errors import Conflict, FieldError, NotFound, ValidationFailed
from core.outbox import add_event
from tracking.live import Live
from tracking.metrics import TrackingMetrics
from tracking.ports import OrderFacts, Orders

DISPATCHABLE = frozenset({"paid", "packed"})


class OfferTaken(Conflict):
    code = "offer_taken"
    titles: ClassVar[Mapping[str, str]] = {
        "en": "Another rider took this job",
        "ar": "أخذ مندوب آخر هذه المهمة",
    }


class OfferExpired(Conflict):
    code = "offer_expired"
    titles: ClassVar[Mapping[str, str]] = {"en": "The offer expired", "ar": "انتهت صلاحية العرض"}


class NoRiderAvailable(Conflict):
    code = "no_rider_available"
    titles: ClassVar[Mapping[str, str]] = {
        "en": "No rider available nearby",
        "ar": "لا يوجد مندوب متاح بالقرب",
    }


class NotDispatchable(Conflict):
    code = "order_not_dispatchable"
    titles: ClassVar[Mapping[str, str]] = {
        "en": "This order cannot be dispatched",
        "ar": "لا يمكن إرسال هذا الطلب",
    }
    details: ClassVar[Mapping[str, str]] = {
        "en": "Only a paid or packed order without a rider can be dispatched.",
        "ar": "يمكن إرسال الطلب المدفوع أو المعبأ فقط إذا لم يكن له مندوب.",
    }


@dataclass(frozen=True, slots=True)
class DispatchConfig:
    fanout: int = 3
    radius_m: int = 3000
    max_radius_m: int = 20_000
    widen: float = 2.0
    offer_ttl_s: int = 30
    max_rounds: int = 5
    offline_s: int = 60


@dataclass(frozen=True, slots=True)
class Offer:
    id: uuid.UUID
    rider_id: uuid.UUID


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


class Dispatcher:
    def __init__(self, pool: asyncpg.Pool, live: Live, orders: Orders,
                 metrics: TrackingMetrics, config: DispatchConfig) -> None:
        self.pool = pool
        self.live = live
        self.orders = orders
        self.metrics = metrics
        self.config = config

    async def _candidates(self, lat: float, lon: float, radius_m: float,
                          exclude: set[uuid.UUID]) -> list[uuid.UUID]:
        fresh_after = int(time.time() * 1000) - self.config.offline_s * 1000
        found = await self.live.nearest(lat, lon, radius_m,
                                        self.config.fanout * 4 + len(exclude), fresh_after)
        return [r for r, _ in found if r not in exclude][: self.config.fanout]

    async def pickup_of(self, seller_id: uuid.UUID,
                        given: tuple[float, float] | None) -> tuple[float, float]:
        """The pickup given (remembered as the seller's), else the seller's last one."""
        if given is not None:
            await self.pool.execute(
                """INSERT INTO tracking_pickups (seller_id, lat, lon) VALUES ($1, $2, $3)
                   ON CONFLICT (seller_id) DO UPDATE SET lat = $2, lon = $3, updated_at = now()""",
                seller_id, *given)
            return given
        row = await self.pool.fetchrow(
            "SELECT lat, lon FROM tracking_pickups WHERE seller_id = $1", seller_id)
        if row is None:
            raise ValidationFailed([FieldError("pickup", "required (no earlier pickup known)")])
        return (row["lat"], row["lon"])

    async def dispatch(self, order_id: uuid.UUID, *, pickup: tuple[float, float],
                       radius_m: int | None, queue_if_none: bool = False) -> list[Offer]:
        """Offer the order now. Raises NotFound, NotDispatchable, NoRiderAvailable (unless
        `queue_if_none`: then the job waits for the sweep to look again, wider)."""
        radius = min(radius_m or self.config.radius_m, self.config.max_radius_m)
        riders = await self._candidates(*pickup, radius, set())
        if not riders and not queue_if_none:
            self.metrics.rounds.labels("no_rider").inc()
            raise NoRiderAvailable()
        async with self.pool.acquire() as conn, conn.transaction():
            facts = await self.orders.facts(conn, order_id, lock=True)
            if facts is None:
                raise NotFound()
            if facts.state not in DISPATCHABLE or facts.rider_id is not None:
                raise NotDispatchable()
            # A new dispatch replaces any outstanding offers of an earlier one.
            await conn.execute(
                """UPDATE dispatch_offers SET state = 'expired'
                   WHERE order_id = $1 AND state = 'offered'""", order_id)
            await conn.execute(
                """INSERT INTO dispatch_jobs (order_id, pickup_lat, pickup_lon, radius_m, round,
                                              state, next_at)
                   VALUES ($1, $2, $3, $4, 0, 'open', now())
                   ON CONFLICT (order_id) DO UPDATE SET pickup_lat = $2, pickup_lon = $3,
                       radius_m = $4, round = 0, state = 'open', next_at = now(),
                       updated_at = now()""", order_id, *pickup, radius)
            offers = await self._offer(conn, facts, pickup, riders, round_=1)
        return offers

    async def _offer(self, conn: asyncpg.Connection, facts: OrderFacts,
                     pickup: tuple[float, float], riders: list[uuid.UUID],
                     round_: int) -> list[Offer]:
        ttl = self.config.offer_ttl_s
        expires_at: datetime = await conn.fetchval(
            "SELECT now() + make_interval(secs => $1)", float(ttl))
        offers = []
        for rider in riders:
            offer_id = uuid.uuid4()
            await conn.execute(
                """INSERT INTO dispatch_offers (id, order_id, rider_id, round, state, expires_at)
                   VALUES ($1, $2, $3, $4, 'offered', $5)""",
                offer_id, facts.id, rider, round_, expires_at)
            await add_event(conn, "dispatch.offer", {
                "type": "dispatch.offer", "offer_id": str(offer_id), "order_id": str(facts.id),
                "pickup": {"lat": pickup[0], "lon": pickup[1]}, "expires_at": _iso(expires_at),
            }, channels=[f"user:{rider}"])
            offers.append(Offer(offer_id, rider))
        await conn.execute(
            "UPDATE dispatch_jobs SET round = $2, next_at = $3, updated_at = now() "
            "WHERE order_id = $1", facts.id, round_, expires_at)
        self.metrics.offers.inc(len(offers))
        self.metrics.rounds.labels("offered" if offers else "no_rider").inc()
        return offers

    async def accept(self, offer_id: uuid.UUID, rider_id: uuid.UUID) -> uuid.UUID:
        """The rider takes the offer; returns the order id. Raises NotFound (no such offer
        for this rider), OfferTaken, OfferExpired, or the orders domain's errors."""
        order_id: uuid.UUID | None = await self.pool.fetchval(
            "SELECT order_id FROM dispatch_offers WHERE id = $1 AND rider_id = $2",
            offer_id, rider_id)
        if order_id is None:
            raise NotFound()
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                await self._accept(conn, offer_id, order_id, rider_id)
        except (OfferTaken, OfferExpired) as exc:
            self.metrics.accepts.labels(exc.code).inc()
            raise
        except asyncpg.UniqueViolationError:  # the index saw a second winner
            self.metrics.accepts.labels(OfferTaken.code).inc()
            raise OfferTaken() from None
        self.metrics.accepts.labels("won").inc()
        return order_id

    async def _accept(self, conn: asyncpg.Connection, offer_id: uuid.UUID,
                      order_id: uuid.UUID, rider_id: uuid.UUID) -> None:
        facts = await self.orders.facts(conn, order_id, lock=True)  # serialises accepts
        offer = await conn.fetchrow(
            "SELECT state, expires_at <= now() AS late FROM dispatch_offers WHERE id = $1",
            offer_id)
        if offer["state"] == "accepted":
            return  # a retry of the winning accept
        if facts is None or facts.rider_id is not None or offer["state"] == "taken":
            raise OfferTaken()
        if offer["state"] == "expired" or offer["late"] or facts.state not in DISPATCHABLE:
            raise OfferExpired()
        await conn.execute("UPDATE dispatch_offers SET state = 'accepted' WHERE id = $1",
                           offer_id)
        losers = await conn.fetch(
            """UPDATE dispatch_offers SET state = 'taken'
               WHERE order_id = $1 AND state = 'offered' RETURNING id, rider_id""", order_id)
        await conn.execute(
            "UPDATE dispatch_jobs SET state = 'assigned', updated_at = now() WHERE order_id = $1",
            order_id)
        await self.orders.assign(conn, order_id, rider_id)
        for row in losers:
            await add_event(conn, "dispatch.offer_taken", {
                "type": "dispatch.offer_taken", "offer_id": str(row["id"]),
                "order_id": str(order_id)}, channels=[f"user:{row['rider_id']}"])

    async def sweep(self, limit: int = 50) -> int:
        """Re-offer (wider) every job whose offers ran out. Returns jobs handled."""
        due = await self.pool.fetch(
            """SELECT order_id FROM dispatch_jobs WHERE state = 'open' AND next_at <= now()
               ORDER BY next_at LIMIT $1""", limit)
        handled = 0
        for row in due:
            async with self.pool.acquire() as conn, conn.transaction():
                handled += await self._reoffer(conn, row["order_id"])
        return handled

    async def _reoffer(self, conn: asyncpg.Connection, order_id: uuid.UUID) -> int:
        facts = await self.orders.facts(conn, order_id, lock=True)
        job = await conn.fetchrow(
            """SELECT * FROM dispatch_jobs WHERE order_id = $1 AND state = 'open'
                 AND next_at <= now() FOR UPDATE SKIP LOCKED""", order_id)
        if job is None:
            return 0
        expired = rows_affected(await conn.execute(
            """UPDATE dispatch_offers SET state = 'expired'
               WHERE order_id = $1 AND state = 'offered' AND expires_at <= now()""", order_id))
        self.metrics.expiries.inc(expired)
        if facts is None or facts.state not in DISPATCHABLE or facts.rider_id is not None:
            await conn.execute("UPDATE dispatch_jobs SET state = 'failed' WHERE order_id = $1",
                               order_id)
            return 1
        if job["round"] >= self.config.max_rounds:
            await self._fail(conn, facts)
            return 1
        radius = job["radius_m"] if job["round"] == 0 else min(
            round(job["radius_m"] * self.config.widen), self.config.max_radius_m)
        await conn.execute("UPDATE dispatch_jobs SET radius_m = $2 WHERE order_id = $1",
                           order_id, radius)
        offered = {r["rider_id"] for r in await conn.fetch(
            "SELECT rider_id FROM dispatch_offers WHERE order_id = $1", order_id)}
        pickup = (job["pickup_lat"], job["pickup_lon"])
        riders = await self._candidates(*pickup, radius, offered)
        await self._offer(conn, facts, pickup, riders, round_=job["round"] + 1)
        return 1

    async def _fail(self, conn: asyncpg.Connection, facts: OrderFacts) -> None:
        await conn.execute("UPDATE dispatch_jobs SET state = 'failed' WHERE order_id = $1",
                           facts.id)
        payload: dict[str, Any] = {"type": "dispatch.failed", "order_id": str(facts.id)}
        await add_event(conn, "dispatch.failed", payload, channels=[f"user:{facts.seller_id}"])
        self.metrics.rounds.labels("failed").inc()
