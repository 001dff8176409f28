"""The orders domain as tracking sees it (`tracking.ports.Orders`), and the tracking runtime's
wiring: the hub publishes its positions, the outbox relay tells it about order changes."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import asyncpg

from api.orders import delivery, service
from api.orders.machine import Actor
from core.outbox import OutboxEvent
from realtime.hub import Hub
from tracking.live import Assignment
from tracking.ports import OrderFacts, Segment
from tracking.service import Tracking

log = logging.getLogger("souk.tracking")


def _pair(a: float | None, b: float | None) -> tuple[float, float] | None:
    return None if a is None or b is None else (a, b)


class TrackedOrders:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def display_names(self, user_ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
        if not user_ids:
            return {}
        rows = await self.pool.fetch(
            "SELECT id, display_name FROM users WHERE id = ANY($1::uuid[])", user_ids)
        return {row["id"]: row["display_name"] for row in rows}

    async def assignment(self, rider_id: uuid.UUID) -> Assignment | None:
        row = await delivery.rider_assignment(self.pool, rider_id)
        if row is None:
            return None
        return Assignment(row["id"], row["state"], _pair(row["pickup_lat"], row["pickup_lon"]),
                          _pair(row["dropoff_lat"], row["dropoff_lon"]))

    async def facts(self, conn: asyncpg.Connection | asyncpg.Pool, order_id: uuid.UUID, *,
                    lock: bool = False) -> OrderFacts | None:
        row = await delivery.facts(conn, order_id, lock=lock)
        if row is None:
            return None
        return OrderFacts(row["id"], row["state"], row["buyer_id"], row["seller_id"],
                          row["rider_id"])

    async def assign(self, conn: asyncpg.Connection, order_id: uuid.UUID,
                     rider_id: uuid.UUID) -> None:
        await service.assign_rider(conn, order_id, rider_id,
                                   by=service.By(Actor.RIDER, rider_id))

    async def segment(self, order_id: uuid.UUID) -> Segment | None:
        row = await delivery.segment(self.pool, order_id)
        if row is None or row["rider_id"] is None or row["start"] is None:
            return None
        return Segment(row["buyer_id"], row["rider_id"], row["start"], row["end"])


def hub_publisher(hub: Hub) -> Any:
    async def publish(channel: str, data: dict[str, Any], key: str) -> None:
        await hub.publish(channel, data, key=key)

    return publish


def order_events_handler(tracking: Tracking) -> Any:
    """Outbox handler: never fails the relay (a stale assignment cache expires by itself)."""

    async def handle(event: OutboxEvent) -> None:
        try:
            await tracking.on_order_event(event)
        except Exception:
            log.warning("tracking could not follow an order event", exc_info=True,
                        extra={"event_id": event.id})

    return handle
