"""Driving a server over plain HTTP as buyers, sellers and riders do (no in-process shortcuts),
so the same helpers serve tests against a real uvicorn process."""

from __future__ import annotations

import itertools
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from testkit.waiting import eventually

_n = itertools.count()
PICKUP = (52.5200, 13.4050)  # Berlin Mitte
DROPOFF = (52.5300, 13.4150)  # ~1.3 km north-east


@dataclass
class User:
    id: str
    role: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def signup(http: httpx.AsyncClient, role: str) -> User:
    n = next(_n)
    r = await http.post("/v1/auth/register", json={
        "email": f"trk-{role}-{n}-{uuid.uuid4().hex[:6]}@example.com",
        "password": "correct horse battery staple", "display_name": f"{role} {n}",
        "role": role})
    assert r.status_code == 201, r.text
    body = r.json()
    return User(body["user"]["id"], role, body["access_token"])


async def paid_order(http: httpx.AsyncClient, seller: User, buyer: User,
                     dropoff: tuple[float, float] | None = DROPOFF) -> str:
    """A paid order of `buyer` from `seller`, to be delivered at `dropoff`."""
    r = await http.post("/v1/products", headers=seller.headers, json={
        "title": "Hand-woven scarf", "variants": [{"sku": "S1", "price": 1000, "stock": 5}]})
    assert r.status_code == 201, r.text
    variant = r.json()["variants"][0]["id"]
    r = await http.post("/v1/wallet/topups", headers=buyer.headers, json={"amount": 5000})
    assert r.status_code == 201, r.text
    r = await http.post("/v1/cart/items", headers=buyer.headers,
                        json={"variant_id": variant, "quantity": 1})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = {}
    if dropoff is not None:
        body["delivery_location"] = {"lat": dropoff[0], "lon": dropoff[1]}
    r = await http.post("/v1/checkout", json=body,
                        headers={**buyer.headers, "Idempotency-Key": str(uuid.uuid4())})
    assert r.status_code == 201, r.text
    order_id: str = r.json()["orders"][0]["id"]
    r = await http.post(f"/v1/orders/{order_id}/pay", json={},
                        headers={**buyer.headers, "Idempotency-Key": str(uuid.uuid4())})
    assert r.status_code == 200, r.text
    return order_id


async def device_key(http: httpx.AsyncClient, rider: User) -> str:
    r = await http.post("/v1/tracking/devices", headers=rider.headers, json={"label": "phone"})
    assert r.status_code == 201, r.text
    key: str = r.json()["key"]
    return key


async def available(http: httpx.AsyncClient, rider: User) -> None:
    r = await http.put("/v1/riders/me/availability", headers=rider.headers,
                       json={"status": "available"})
    assert r.status_code == 200, r.text


def android_query(key: str, lat: float, lon: float, ts_s: float | None = None,
                  knots: float = 9.72) -> dict[str, str]:
    """The query string of Traccar Client for Android (every field in the query)."""
    return {"id": key, "timestamp": str(int(ts_s if ts_s is not None else time.time())),
            "lat": f"{lat:.6f}", "lon": f"{lon:.6f}", "speed": f"{knots}", "bearing": "45.0",
            "altitude": "34.0", "accuracy": "6.0", "batt": "81.0", "charge": "false"}


def client9_json(key: str, lat: float, lon: float, speed_mps: float = 5.0) -> dict[str, Any]:
    """The JSON body of Traccar Client 9+."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + \
        f".{int(time.time() * 1000) % 1000:03d}Z"
    return {"location": {"timestamp": stamp, "coords": {
        "latitude": lat, "longitude": lon, "accuracy": 5.0, "speed": speed_mps,
        "heading": 45.0, "altitude": 40.0}, "is_moving": True, "event": "motionchange",
        "odometer": 100.0, "battery": {"level": 0.8, "is_charging": False},
        "activity": {"type": "on_bicycle"}, "extras": {}}, "device_id": key}


async def poll(check: Any, wait_s: float = 10.0) -> Any:
    """Call `await check()` until it returns something truthy (bounded)."""
    return await eventually(check, wait_s, step=0.05)


def metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total
