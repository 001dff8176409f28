"""Riders online for the operations dashboard: `GET /v1/tracking/riders/online` lists riders
heard from within TRACKING_OFFLINE_S with their last position; silent riders are left out;
admins only."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx

from core.context import Runtime
from tests.conftest import Register
from tests.tracking.helpers import android_query, poll
from tracking.live import Live
from tracking.model import Fix, online_since_ms

URL = "/v1/tracking/riders/online"


def test_online_cutoff_rule() -> None:
    assert online_since_ms(100_000, 60) == 40_000
    assert online_since_ms(100_000, 5) == 95_000


async def test_a_rider_who_posted_a_fix_is_online_and_a_silent_one_is_not(
    client: httpx.AsyncClient, rt: Runtime, register: Register
) -> None:
    admin, rider = await register("admin"), await register("rider", name="Rania Rider")
    silent = await register("rider")
    r = await client.put("/v1/riders/me/availability", headers=rider.headers,
                         json={"status": "available"})
    assert r.status_code == 200, r.text
    r = await client.post("/v1/tracking/devices", json={}, headers=rider.headers)
    key = r.json()["key"]
    r = await client.get("/v1/tracking/osmand", params=android_query(key, 52.5210, 13.4100))
    assert r.status_code == 200, r.text
    # The silent rider's last fix was accepted longer ago than TRACKING_OFFLINE_S.
    live = Live(rt.redis, rt.settings.redis_prefix)
    long_ago = int(time.time() * 1000) - (rt.settings.tracking_offline_s + 30) * 1000
    assert await live.save(uuid.UUID(silent.id), Fix(52.50, 13.40, long_ago),
                           judged_against=None, ewma=None, available=True,
                           now_ms=long_ago) is not None

    async def listed() -> dict[str, Any] | None:
        r = await client.get(URL, headers=admin.headers)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body if any(i["rider_id"] == rider.id for i in body["items"]) else None

    body = await poll(listed)
    assert body["offline_after_s"] == rt.settings.tracking_offline_s
    ids = [i["rider_id"] for i in body["items"]]
    assert silent.id not in ids
    assert body["total"] == len(ids)
    [item] = [i for i in body["items"] if i["rider_id"] == rider.id]
    assert (item["lat"], item["lon"]) == (52.521, 13.41)
    assert item["available"] is True and item["display_name"] == "Rania Rider"
    assert abs(item["speed"] - 5.0) < 0.01 and item["heading"] == 45.0
    assert abs(item["ts"] - time.time() * 1000) < 5_000

    r = await client.get(URL, params={"limit": "501"}, headers=admin.headers)
    assert r.status_code == 422 and r.headers["content-type"].startswith(
        "application/problem+json")


async def test_only_admins_see_riders_online(
    client: httpx.AsyncClient, register: Register
) -> None:
    buyer, rider = await register("buyer"), await register("rider")
    for who in (buyer, rider):
        r = await client.get(URL, headers=who.headers)
        assert r.status_code == 403, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
    r = await client.get(URL)
    assert r.status_code == 401


async def test_the_document_states_the_limit(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    op = doc["paths"][URL]["get"]
    [limit] = [p for p in op["parameters"] if p["name"] == "limit"]
    assert limit["schema"]["anyOf"][0] == {"type": "integer", "minimum": 1, "maximum": 500}
    assert {"401", "403", "422"} <= set(op["responses"])
