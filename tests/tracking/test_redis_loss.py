"""Redis restarted empty in the middle of a delivery: the live view comes back with the next
fix (availability, device keys and the assignment are reloaded from PostgreSQL) and the
history in PostgreSQL is intact. Uses a private Redis, never the shared one."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.realtime.wsclient import WsClient
from tests.support.private_redis import PrivateRedis
from tests.support.servers import ServerProcess
from tests.tracking.helpers import (
    PICKUP,
    android_query,
    available,
    device_key,
    paid_order,
    poll,
    signup,
)


async def position(ws: WsClient) -> dict[str, Any]:
    while True:
        [pub] = await ws.publications(1, wait_s=15)
        if pub["data"].get("type") == "rider.position":
            data: dict[str, Any] = pub["data"]
            return data


@pytest.mark.slow
async def test_redis_restarted_empty_mid_delivery(
    servers: Callable[..., ServerProcess], private_redis: PrivateRedis,
) -> None:
    srv = servers(REDIS_URL=private_redis.url, ORDER_POSITION_HZ="50")
    async with httpx.AsyncClient(base_url=srv.url, timeout=10) as http:
        seller, buyer = await signup(http, "seller"), await signup(http, "buyer")
        rider = await signup(http, "rider")
        order_id = await paid_order(http, seller, buyer)
        key = await device_key(http, rider)
        await available(http, rider)
        r = await http.post(f"/v1/orders/{order_id}/assign-rider", json={"rider_id": rider.id},
                            headers=seller.headers)
        assert r.status_code == 200, r.text
        for who, to in ((seller, "packed"), (rider, "out_for_delivery")):
            r = await http.post(f"/v1/orders/{order_id}/transitions", json={"to": to},
                                headers=who.headers)
            assert r.status_code == 200, r.text
        start = int(time.time()) + 1
        channel = f"order:{order_id}"

        async def watch() -> WsClient:
            ws = await WsClient.open(srv.ws_url, token=buyer.token)
            assert "result" in await ws.call("subscribe", channel=channel)
            return ws

        async def report(i: int) -> int:
            r = await http.get("/v1/tracking/osmand", params=android_query(
                key, PICKUP[0] + i * 0.0003, PICKUP[1], start + i * 5))
            return r.status_code

        ws = await watch()
        try:
            assert await report(0) == 200  # the rider's first fix: nothing cached yet
            assert (await position(ws))["ts"] == start * 1000
            assert await report(1) == 200
            assert (await position(ws))["ts"] == (start + 5) * 1000
        finally:
            await ws.close()

        private_redis.kill()
        private_redis.start()  # empty: no persistence

        # The server reconnects; the next fixes are accepted (keys and availability come from
        # PostgreSQL) and positions reach a (re)subscribed buyer again.
        async def served() -> bool:
            return await report(2) == 200
        await poll(served, wait_s=20)
        ws = await watch()
        try:
            assert await report(3) == 200
            assert (await position(ws))["ts"] == (start + 15) * 1000
        finally:
            await ws.close()

        async def history() -> list[Any] | None:
            r = await http.get(f"/v1/orders/{order_id}/track", headers=buyer.headers)
            found: list[Any] = r.json()["positions"]
            return found if len(found) == 4 else None
        positions = await poll(history)
        assert [p["ts"] for p in positions] == [(start + 5 * i) * 1000 for i in range(4)]
