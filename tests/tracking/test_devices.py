"""Device keys: issued once, stored hashed, listed, revoked; OsmAnd refuses unknown and revoked
keys and answers 200 to a known key even when its fix is filtered out."""

from __future__ import annotations

import hashlib
import time

import httpx

from core.context import Runtime
from tests.conftest import Register
from tests.tracking.helpers import android_query, metric


async def test_keys_are_shown_once_stored_hashed_and_revocable(
    client: httpx.AsyncClient, register: Register, rt: Runtime
) -> None:
    rider, other, admin = await register("rider"), await register("rider"), await register("admin")
    r = await client.post("/v1/tracking/devices", json={"label": "work phone"},
                          headers=rider.headers)
    assert r.status_code == 201, r.text
    made = r.json()
    key = made["key"]
    assert len(key) > 40 and made["label"] == "work phone"
    stored = await rt.pool.fetchval("SELECT key_hash FROM tracking_devices WHERE id = $1",
                                    __import__("uuid").UUID(made["id"]))
    assert stored == hashlib.sha256(key.encode()).digest()
    r = await client.get("/v1/tracking/devices", headers=rider.headers)
    [listed] = r.json()["items"]
    assert listed["id"] == made["id"] and "key" not in listed
    r = await client.get("/v1/tracking/devices", headers=admin.headers,
                         params={"rider_id": rider.id})
    assert [d["id"] for d in r.json()["items"]] == [made["id"]]
    r = await client.post("/v1/tracking/devices", json={}, headers=admin.headers)
    assert r.status_code == 403

    now = time.time()
    r = await client.get("/v1/tracking/osmand", params=android_query(key, 52.52, 13.405, now))
    assert (r.status_code, r.content) == (200, b"")
    # Filtered (0,0 and a duplicate) but the device is known: 200, the app must not retry.
    r = await client.get("/v1/tracking/osmand", params=android_query(key, 0.0, 0.0, now + 1))
    assert r.status_code == 200
    r = await client.post("/v1/tracking/osmand", params=android_query(key, 52.52, 13.405, now))
    assert r.status_code == 200
    text = (await client.get("/metrics")).text
    assert metric(text, "souk_tracking_fixes_total", transport="osmand", result="accepted") == 1
    assert metric(text, "souk_tracking_fixes_total", transport="osmand", result="zero") == 1
    assert metric(text, "souk_tracking_fixes_total", transport="osmand", result="duplicate") == 1

    r = await client.get("/v1/tracking/osmand", params=android_query("trk_nope", 52.5, 13.4))
    assert r.status_code == 403 and r.json()["code"] == "device_unknown"
    r = await client.get("/v1/tracking/osmand", params={"lat": "52.5", "lon": "13.4"})
    assert r.status_code == 400 and r.json()["code"] == "malformed_report"

    r = await client.delete(f"/v1/tracking/devices/{made['id']}", headers=other.headers)
    assert r.status_code == 404  # another rider's key does not exist for them
    r = await client.delete(f"/v1/tracking/devices/{made['id']}", headers=rider.headers)
    assert r.status_code == 204
    r = await client.get("/v1/tracking/osmand", params=android_query(key, 52.52, 13.405))
    assert r.status_code == 403 and r.json()["code"] == "device_unknown"

    r = await client.post("/v1/tracking/devices", json={}, headers=rider.headers)
    second = r.json()
    r = await client.delete(f"/v1/tracking/devices/{second['id']}", headers=admin.headers)
    assert r.status_code == 204
    r = await client.post("/v1/tracking/osmand", json={
        "device_id": second["key"], "location": {"coords": {"latitude": 1, "longitude": 2}}})
    assert r.status_code == 403
    text = (await client.get("/metrics")).text
    assert metric(text, "souk_tracking_requests_refused_total", reason="unknown_device") == 3


async def test_listing_devices_defaults_to_the_caller_and_only_admins_name_another(
    client: httpx.AsyncClient, register: Register
) -> None:
    rider, other, admin = await register("rider"), await register("rider"), await register("admin")
    r = await client.post("/v1/tracking/devices", json={}, headers=rider.headers)
    made = r.json()["id"]
    r = await client.get("/v1/tracking/devices", params={"rider_id": rider.id},
                         headers=rider.headers)
    assert [d["id"] for d in r.json()["items"]] == [made]
    r = await client.get("/v1/tracking/devices", params={"rider_id": rider.id},
                         headers=other.headers)
    assert r.status_code == 403
    r = await client.get("/v1/tracking/devices", params={"rider_id": "nope"},
                         headers=rider.headers)
    assert r.status_code == 422 and r.json()["code"] == "validation_failed"
    r = await client.get("/v1/tracking/devices", headers=admin.headers)
    assert (r.status_code, r.json()["items"]) == (200, [])  # an admin's own: none
