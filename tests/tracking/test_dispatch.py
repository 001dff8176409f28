"""Dispatch across real server processes: the first accept wins, exactly once; offers expire
and the job goes out again, wider; no rider in reach is a 409."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import pytest

from tests.realtime.wsclient import WsClient
from tests.support.servers import ServerProcess
from tests.tracking.helpers import (
    PICKUP,
    User,
    android_query,
    available,
    device_key,
    metric,
    paid_order,
    signup,
)

PICKUP_BODY = {"pickup": {"lat": PICKUP[0], "lon": PICKUP[1]}}


async def rider_at(http: httpx.AsyncClient, lat: float, lon: float) -> User:
    rider = await signup(http, "rider")
    key = await device_key(http, rider)
    await available(http, rider)
    r = await http.get("/v1/tracking/osmand", params=android_query(key, lat, lon))
    assert r.status_code == 200
    return rider


async def accept(go: asyncio.Event, http: httpx.AsyncClient, offer_id: str,
                 rider: User) -> httpx.Response:
    await go.wait()
    return await http.post(f"/v1/dispatch/offers/{offer_id}/accept", headers=rider.headers)


@pytest.mark.slow
async def test_two_riders_accepting_at_once_on_two_processes_one_wins(
    servers: Callable[..., ServerProcess],
) -> None:
    a, b = servers(), servers()
    async with httpx.AsyncClient(base_url=a.url, timeout=10) as ha, \
            httpx.AsyncClient(base_url=b.url, timeout=10) as hb:
        seller, buyer = await signup(ha, "seller"), await signup(ha, "buyer")
        r1 = await rider_at(ha, PICKUP[0] + 0.001, PICKUP[1])
        r2 = await rider_at(hb, PICKUP[0] - 0.001, PICKUP[1])
        for _ in range(4):
            order_id = await paid_order(ha, seller, buyer)
            r = await ha.post(f"/v1/orders/{order_id}/dispatch", json=PICKUP_BODY,
                              headers=seller.headers)
            assert r.status_code == 202, r.text
            offers = {o["rider_id"]: o["id"] for o in r.json()["offers"]}
            assert set(offers) == {r1.id, r2.id}
            go = asyncio.Event()

            tasks = [asyncio.create_task(accept(go, http, offers[rider.id], rider))
                     for http, rider in ((ha, r1), (hb, r2))]
            await asyncio.sleep(0)
            go.set()
            answers = await asyncio.gather(*tasks)
            codes = sorted(r.status_code for r in answers)
            assert codes == [200, 409], [r.text for r in answers]
            [lost] = [r for r in answers if r.status_code == 409]
            assert lost.json()["code"] == "offer_taken"
            [won] = [r for r in answers if r.status_code == 200]
            r = await hb.get(f"/v1/orders/{order_id}", headers=seller.headers)
            assert r.json()["rider_id"] == won.json()["rider_id"]
            assigned = [e for e in r.json()["events"] if e["kind"] == "rider_assigned"]
            assert len(assigned) == 1
        text = (await ha.get("/metrics")).text + (await hb.get("/metrics")).text
        assert metric(text, "souk_dispatch_accepts_total", outcome="won") == 4
        assert metric(text, "souk_dispatch_accepts_total", outcome="offer_taken") == 4


@pytest.mark.slow
async def test_offers_expire_and_the_job_goes_out_wider(
    servers: Callable[..., ServerProcess],
) -> None:
    srv = servers(DISPATCH_OFFER_TTL_S="1", DISPATCH_FANOUT="1")
    async with httpx.AsyncClient(base_url=srv.url, timeout=10) as http:
        seller, buyer = await signup(http, "seller"), await signup(http, "buyer")
        near = await rider_at(http, PICKUP[0] + 0.0045, PICKUP[1])  # ~500 m
        far = await rider_at(http, PICKUP[0] + 0.027, PICKUP[1])  # ~3 km
        order_id = await paid_order(http, seller, buyer)
        far_ws = await WsClient.open(srv.ws_url, token=far.token)
        try:
            await far_ws.call("subscribe", channel=f"user:{far.id}")
            r = await http.post(f"/v1/orders/{order_id}/dispatch",
                                json={**PICKUP_BODY, "radius_m": 1000}, headers=seller.headers)
            assert r.status_code == 202, r.text
            [first] = r.json()["offers"]
            assert first["rider_id"] == near.id
            started = time.monotonic()
            # Nobody accepts: after 1 s the job goes out at 2 km (nobody new), then 4 km.
            while True:
                [pub] = await far_ws.publications(1, wait_s=15)
                if pub["data"].get("type") == "dispatch.offer":
                    break
            assert pub["data"]["order_id"] == order_id
            assert time.monotonic() - started >= 1.0
            r = await http.post(f"/v1/dispatch/offers/{first['id']}/accept",
                                headers=near.headers)
            assert r.status_code == 409 and r.json()["code"] == "offer_expired"
            r = await http.post(f"/v1/dispatch/offers/{pub['data']['offer_id']}/accept",
                                headers=far.headers)
            assert r.status_code == 200, r.text
            r = await http.post(f"/v1/dispatch/offers/{first['id']}/accept",
                                headers=far.headers)
            assert r.status_code == 404  # not their offer
        finally:
            await far_ws.close()
        text = (await http.get("/metrics")).text
        assert metric(text, "souk_dispatch_offers_expired_total") >= 1
        assert metric(text, "souk_dispatch_accepts_total", outcome="offer_expired") == 1

        # Nobody within reach of a pickup in Paris.
        other = await paid_order(http, seller, buyer)
        r = await http.post(f"/v1/orders/{other}/dispatch",
                            json={"pickup": {"lat": 48.8566, "lon": 2.3522}},
                            headers=seller.headers)
        assert r.status_code == 409 and r.json()["code"] == "no_rider_available"
        # Only its seller (or an admin) dispatches an order.
        r = await http.post(f"/v1/orders/{other}/dispatch", json=PICKUP_BODY,
                            headers=buyer.headers)
        assert r.status_code == 403
