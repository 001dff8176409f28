"""A delivery end to end on a real server process: OsmAnd reports exactly as Traccar Client
sends them (query, form, JSON) reach the order channel; only the order's parties read it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis

from core.config import Settings
from tests.realtime.wsclient import WsClient
from tests.support.servers import ServerProcess
from tests.tracking.helpers import (
    DROPOFF,
    PICKUP,
    User,
    android_query,
    available,
    client9_json,
    device_key,
    metric,
    paid_order,
    poll,
    signup,
)

FAST = {"ORDER_POSITION_HZ": "50", "WS_COMMAND_RATE": "1000", "WS_COMMAND_BURST": "1000"}


def along(share: float) -> tuple[float, float]:
    return (PICKUP[0] + (DROPOFF[0] - PICKUP[0]) * share,
            PICKUP[1] + (DROPOFF[1] - PICKUP[1]) * share)


async def job_forgotten(settings: Settings, rider: User) -> None:
    """Wait until the outbox relay told tracking that the rider's assignment changed."""
    redis = aioredis.Redis.from_url(settings.redis_url)
    key = f"{settings.redis_prefix}trk:job:{rider.id}"
    try:
        async def gone() -> bool:
            return not await redis.exists(key)
        await poll(gone)
    finally:
        await redis.aclose()


async def next_of(ws: WsClient, kind: str) -> dict[str, Any]:
    while True:
        [pub] = await ws.publications(1)
        if pub["data"].get("type") == kind:
            data: dict[str, Any] = pub["data"]
            return data


async def both(ws: WsClient, *kinds: str) -> dict[str, dict[str, Any]]:
    """Read until one message of each kind arrived (in whatever order)."""
    seen: dict[str, dict[str, Any]] = {}
    while len(seen) < len(kinds):
        [pub] = await ws.publications(1)
        if pub["data"].get("type") in kinds:
            seen.setdefault(pub["data"]["type"], pub["data"])
    return seen


async def move(http: httpx.AsyncClient, who: User, order_id: str, to: str) -> None:
    r = await http.post(f"/v1/orders/{order_id}/transitions", json={"to": to},
                        headers=who.headers)
    assert r.status_code == 200, r.text


@pytest.mark.slow
async def test_delivery_from_dispatch_to_drop_off(
    servers: Callable[..., ServerProcess], settings: Settings
) -> None:
    srv = servers(**FAST)
    async with httpx.AsyncClient(base_url=srv.url, timeout=10) as http:
        seller, buyer, other = [await signup(http, r) for r in ("seller", "buyer", "buyer")]
        rider = await signup(http, "rider")
        order_id = await paid_order(http, seller, buyer)
        key = await device_key(http, rider)
        await available(http, rider)
        base = int(time.time()) - 900
        # Traccar Client for Android: a GET/POST with every field in the query, 400 m away.
        r = await http.get("/v1/tracking/osmand",
                           params=android_query(key, PICKUP[0] + 0.0036, PICKUP[1], base))
        assert (r.status_code, r.content) == (200, b"")

        rider_ws = await WsClient.open(srv.ws_url, token=rider.token)
        buyer_ws = await WsClient.open(srv.ws_url, token=buyer.token)
        other_ws = await WsClient.open(srv.ws_url, token=other.token)
        try:
            assert "result" in await rider_ws.call("subscribe", channel=f"user:{rider.id}")
            r = await http.post(f"/v1/orders/{order_id}/dispatch", headers=seller.headers,
                                json={"pickup": {"lat": PICKUP[0], "lon": PICKUP[1]}})
            assert r.status_code == 202, r.text
            [offer] = r.json()["offers"]
            assert offer["rider_id"] == rider.id
            pushed = await next_of(rider_ws, "dispatch.offer")
            assert pushed["offer_id"] == offer["id"] and pushed["order_id"] == order_id
            assert pushed["pickup"] == {"lat": PICKUP[0], "lon": PICKUP[1]}
            assert pushed["expires_at"].endswith("Z")

            r = await http.post(f"/v1/dispatch/offers/{offer['id']}/accept",
                                headers=rider.headers)
            assert r.status_code == 200, r.text
            r = await http.get(f"/v1/orders/{order_id}", headers=seller.headers)
            assert r.json()["rider_id"] == rider.id
            await job_forgotten(settings, rider)

            channel = f"order:{order_id}"
            assert "result" in await buyer_ws.call("subscribe", channel=channel)
            refused = await other_ws.call("subscribe", channel=channel)
            assert refused["error"]["code"] == "forbidden"

            # A form body at the pickup: the rider is near it.
            form = android_query(key, *PICKUP, base + 120)
            r = await http.post("/v1/tracking/osmand", content=httpx.QueryParams(form).__str__(),
                                headers={"Content-Type": "application/x-www-form-urlencoded"})
            assert r.status_code == 200
            near = await next_of(buyer_ws, "order.rider_near_pickup")
            assert near["rider_id"] == rider.id

            await move(http, seller, order_id, "packed")
            await move(http, rider, order_id, "out_for_delivery")
            await job_forgotten(settings, rider)
            now = int(time.time()) + 1

            # Traccar Client 9: JSON, speed in m/s.
            body = client9_json(key, *along(0.6), speed_mps=6.0)
            body["location"]["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                          time.gmtime(now))
            r = await http.post("/v1/tracking/osmand", content=orjson.dumps(body),
                                headers={"Content-Type": "application/json"})
            assert r.status_code == 200
            pos = await next_of(buyer_ws, "rider.position")
            assert (pos["lat"], pos["lon"], pos["ts"]) == (*along(0.6), now * 1000)
            assert pos["speed"] == 6.0 and pos["heading"] == 45.0
            assert 40 < pos["eta_s"] < 120  # ~520 m at ~6 m/s

            # Traccar Client for Android: a POST with the fields in the query.
            r = await http.post("/v1/tracking/osmand",
                                params=android_query(key, *along(0.8), now + 20, knots=19.44))
            assert r.status_code == 200
            pos = await next_of(buyer_ws, "rider.position")
            assert pos["ts"] == (now + 20) * 1000
            assert abs(pos["speed"] - 10.0) < 0.01  # knots converted to m/s

            r = await http.get("/v1/tracking/osmand",
                               params=android_query(key, *DROPOFF, now + 40))
            assert r.status_code == 200
            seen = await both(buyer_ws, "rider.position", "order.rider_arriving")
            assert seen["order.rider_arriving"]["order_id"] == order_id
            assert seen["rider.position"]["eta_s"] == 0

            # The buyer reads the delivery's track (history is written in batches).
            async def track() -> list[Any] | None:
                r = await http.get(f"/v1/orders/{order_id}/track", headers=buyer.headers)
                assert r.status_code == 200, r.text
                found: list[Any] = r.json()["positions"]
                return found if len(found) == 3 else None
            positions = await poll(track)
            assert [p["ts"] for p in positions] == [now * 1000, (now + 20) * 1000,
                                                    (now + 40) * 1000]
            r = await http.get(f"/v1/orders/{order_id}/track", headers=other.headers)
            assert r.status_code == 404

            await move(http, rider, order_id, "delivered")
            await job_forgotten(settings, rider)
            before = metric((await http.get("/metrics")).text,
                            "souk_tracking_positions_published_total")
            r = await http.get("/v1/tracking/osmand",
                               params=android_query(key, *DROPOFF, now + 50))
            assert r.status_code == 200
            after = metric((await http.get("/metrics")).text,
                           "souk_tracking_positions_published_total")
            assert after == before  # delivered: nothing more on the order channel
            r = await http.get(f"/v1/orders/{order_id}/track", headers=buyer.headers)
            assert r.status_code == 404  # the buyer's view ends with the delivery
        finally:
            for ws in (rider_ws, buyer_ws, other_ws):
                await ws.close()


@pytest.mark.slow
async def test_location_op_is_for_riders_and_their_own_position(
    servers: Callable[..., ServerProcess],
) -> None:
    srv = servers(**FAST)
    async with httpx.AsyncClient(base_url=srv.url, timeout=10) as http:
        rider, rider2, buyer = [await signup(http, r) for r in ("rider", "rider", "buyer")]
    ws = await WsClient.open(srv.ws_url, token=rider.token)
    bws = await WsClient.open(srv.ws_url, token=buyer.token)
    try:
        now = int(time.time() * 1000)
        r = await ws.call("location", lat=PICKUP[0], lon=PICKUP[1], ts=now, speed=3.0)
        assert r["result"] == {"accepted": True}
        r = await ws.call("location", lat=PICKUP[0], lon=PICKUP[1], ts=now)
        assert r["result"] == {"accepted": False, "reason": "duplicate"}
        r = await ws.call("location", lat=PICKUP[0] + 1, lon=PICKUP[1], ts=now + 1000)
        assert r["result"] == {"accepted": False, "reason": "speed"}
        r = await ws.call("location", lat=PICKUP[0], lon=PICKUP[1], ts=now + 2000,
                          rider_id=rider2.id)
        assert r["error"]["code"] == "forbidden"
        r = await ws.call("location", lat=PICKUP[0], lon=PICKUP[1], ts=now + 2000,
                          rider_id=rider.id)
        assert r["result"] == {"accepted": True}
        r = await ws.call("location", lat="north", lon=PICKUP[1])
        assert r["error"]["code"] == "validation_failed"
        r = await bws.call("location", lat=PICKUP[0], lon=PICKUP[1])
        assert r["error"]["code"] == "forbidden"
        async with httpx.AsyncClient(base_url=srv.url, timeout=10) as http:
            text = (await http.get("/metrics")).text
        assert metric(text, "souk_tracking_fixes_total", transport="ws", result="accepted") == 2
        assert metric(text, "souk_tracking_fixes_total", transport="ws", result="speed") == 1
        assert metric(text, "souk_tracking_fixes_total", transport="ws",
                      result="duplicate") == 1
    finally:
        await ws.close()
        await bws.close()
