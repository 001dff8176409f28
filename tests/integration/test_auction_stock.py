"""An auction holds the unit it sells, in the real catalog and order tables: nobody can buy it
or auction it again while the bidding runs; it is back for sale when the auction ends without
a sale, and sold (once) when the winner pays."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from core.context import Runtime
from tests.conftest import TIMING_FACTOR, Register


async def _counters(rt: Runtime, variant: str) -> tuple[int, int, int]:
    row = await rt.pool.fetchrow(
        "SELECT on_hand, reserved, sold FROM variants WHERE id = $1", uuid.UUID(variant))
    return row["on_hand"], row["reserved"], row["sold"]


async def _buy(client: httpx.AsyncClient, buyer_headers: dict[str, str], variant: str) -> int:
    await client.delete(f"/v1/cart/items/{variant}", headers=buyer_headers)
    r = await client.post("/v1/cart/items", headers=buyer_headers,
                          json={"variant_id": variant, "quantity": 1})
    assert r.status_code in (200, 201), r.text
    r = await client.post("/v1/checkout", headers={
        **buyer_headers, "Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code in (201, 409), r.text
    if r.status_code == 409:
        assert r.json()["code"] == "out_of_stock"
    return r.status_code


async def test_an_auctioned_unit_is_held_then_released_or_sold(
    client: httpx.AsyncClient, register: Register, rt: Runtime,
) -> None:
    seller, admin = await register("seller"), await register("admin")
    shopper, bidder = await register("buyer"), await register("buyer")
    for who in (shopper, bidder):
        r = await client.post("/v1/wallet/topups", json={"amount": 50_000},
                              headers={**who.headers, "Idempotency-Key": "fund"})
        assert r.status_code in (200, 201), r.text
    product = (await client.post("/v1/products", headers=seller.headers, json={
        "title": "Brass lamp", "variants": [{"sku": "LAMP-2", "price": 9_000, "stock": 2}]})).json()
    variant = product["variants"][0]["id"]

    async def auction() -> httpx.Response:
        return await client.post("/v1/auctions", headers=seller.headers, json={
            "variant_id": variant, "start_price": 1_000, "duration_s": 60})

    first = await auction()
    assert first.status_code == 201, first.text
    assert await _buy(client, shopper.headers, variant) == 201  # the second unit
    assert await _counters(rt, variant) == (2, 2, 0)
    again = await auction()
    assert again.status_code == 422, again.text
    assert [e["field"] for e in again.json()["errors"]] == ["variant_id"]
    assert await _buy(client, shopper.headers, variant) == 409  # the auction's unit

    r = await client.post(f"/v1/auctions/{first.json()['id']}/cancel", headers=admin.headers,
                          json={"reason": "wrong photo"})
    assert r.status_code in (200, 204), r.text
    assert await _counters(rt, variant) == (2, 1, 0)  # back for sale

    relisted = await auction()
    assert relisted.status_code == 201, relisted.text
    aid = relisted.json()["id"]
    r = await client.post(f"/v1/auctions/{aid}/bids", headers=bidder.headers,
                          json={"amount": 3_000, "bid_id": str(uuid.uuid4())})
    assert r.status_code == 201, r.text
    await rt.pool.execute("UPDATE auctions SET ends_at = clock_timestamp() WHERE id = $1",
                          uuid.UUID(aid))
    deadline = asyncio.get_running_loop().time() + 20 * TIMING_FACTOR
    while (await rt.pool.fetchval("SELECT payment_state FROM auctions WHERE id = $1",
                                  uuid.UUID(aid))) != "captured":
        assert asyncio.get_running_loop().time() < deadline, "the auction was not settled"
        await asyncio.sleep(0.1)
    states = [r["state"] for r in await rt.pool.fetch(
        "SELECT o.state FROM orders o JOIN order_lines l ON l.order_id = o.id "
        "WHERE l.variant_id = $1 ORDER BY o.created_at", uuid.UUID(variant))]
    assert states == ["pending_payment", "paid"]  # the shopper's, unpaid; the winner's
    assert await _counters(rt, variant) == (1, 1, 1)  # one reserved (unpaid), one sold
