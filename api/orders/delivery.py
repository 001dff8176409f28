"""Where an order is delivered and who delivers it, for tracking (api/tracking_ports.py) and
checkout's optional delivery location. Callers own the transaction."""

from __future__ import annotations

import uuid
from typing import TypeAlias

import asyncpg

Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool


async def set_dropoff(conn: Conn, order_ids: list[uuid.UUID], lat: float, lon: float) -> None:
    await conn.execute(
        "UPDATE orders SET dropoff_lat = $2, dropoff_lon = $3 WHERE id = ANY($1::uuid[])",
        order_ids, lat, lon)


async def rider_assignment(conn: Conn, rider_id: uuid.UUID) -> asyncpg.Record | None:
    """The rider's unfinished order (out for delivery first), with drop-off and pickup."""
    row: asyncpg.Record | None = await conn.fetchrow(
        """SELECT o.id, o.state, o.dropoff_lat, o.dropoff_lon, j.pickup_lat, j.pickup_lon
           FROM orders o LEFT JOIN dispatch_jobs j ON j.order_id = o.id
           WHERE o.rider_id = $1 AND o.state IN ('paid', 'packed', 'out_for_delivery')
           ORDER BY o.state = 'out_for_delivery' DESC, o.updated_at DESC LIMIT 1""", rider_id)
    return row


async def facts(conn: Conn, order_id: uuid.UUID, *, lock: bool) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT id, state, buyer_id, seller_id, rider_id FROM orders WHERE id = $1"
        + (" FOR UPDATE" if lock else ""), order_id)
    return row


async def segment(conn: Conn, order_id: uuid.UUID) -> asyncpg.Record | None:
    """(buyer_id, rider_id, start, end) of the order's delivery, from its history."""
    row: asyncpg.Record | None = await conn.fetchrow(
        """SELECT o.buyer_id, o.rider_id,
                  (SELECT min(at) FROM order_events e WHERE e.order_id = o.id
                     AND e.from_state = 'packed' AND e.to_state = 'out_for_delivery') AS start,
                  (SELECT min(at) FROM order_events e WHERE e.order_id = o.id
                     AND e.from_state = 'out_for_delivery'
                     AND e.to_state <> 'out_for_delivery') AS "end"
           FROM orders o WHERE o.id = $1""", order_id)
    return row
