"""DISPATCH_ON_PACKED: packing an order offers it to the nearest rider by itself."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from core.config import Settings
from core.context import Runtime
from tests.support.services import drop_isolation, make_settings
from tests.tracking.helpers import PICKUP, android_query, available, paid_order, poll, signup


@pytest.fixture
async def settings(key_dir: Path) -> AsyncIterator[Settings]:
    s = replace(make_settings(key_dir), dispatch_on_packed=True)
    yield s
    await drop_isolation(s)


async def test_packing_dispatches_to_the_nearest_rider(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    seller, buyer, rider = [await signup(client, r) for r in ("seller", "buyer", "rider")]
    r = await client.post("/v1/tracking/devices", json={}, headers=rider.headers)
    key = r.json()["key"]
    await available(client, rider)
    r = await client.get("/v1/tracking/osmand", params=android_query(key, *PICKUP))
    assert r.status_code == 200
    # The seller's pickup is known from an earlier dispatch (nobody was in reach in Paris).
    first = await paid_order(client, seller, buyer)
    r = await client.post(f"/v1/orders/{first}/dispatch", headers=seller.headers,
                          json={"pickup": {"lat": PICKUP[0], "lon": PICKUP[1]},
                                "radius_m": 50})
    assert r.status_code == 202 and r.json()["offers"][0]["rider_id"] == rider.id

    order_id = await paid_order(client, seller, buyer)
    r = await client.post(f"/v1/orders/{order_id}/transitions", json={"to": "packed"},
                          headers=seller.headers)
    assert r.status_code == 200

    async def offered() -> str | None:
        found: str | None = await rt.pool.fetchval(
            "SELECT id::text FROM dispatch_offers WHERE order_id = $1 AND rider_id = $2",
            uuid.UUID(order_id), uuid.UUID(rider.id))
        return found
    offer_id = await poll(offered)
    r = await client.post(f"/v1/dispatch/offers/{offer_id}/accept", headers=rider.headers)
    assert r.status_code == 200, r.text
