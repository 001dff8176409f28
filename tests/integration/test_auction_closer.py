"""The app's real auction closer: one auction that cannot be settled does not stop the others."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from core.context import Runtime
from tests.conftest import TIMING_FACTOR, Register


async def _auction(client: httpx.AsyncClient, seller_headers: dict[str, str], sku: str) -> str:
    product = (await client.post("/v1/products", headers=seller_headers, json={
        "title": f"Item {sku}", "variants": [{"sku": sku, "price": 5_000, "stock": 1}]})).json()
    r = await client.post("/v1/auctions", headers=seller_headers, json={
        "variant_id": product["variants"][0]["id"], "start_price": 1_000, "duration_s": 60})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def test_unsettleable_auction_does_not_block_the_others(
    client: httpx.AsyncClient, register: Register, rt: Runtime
) -> None:
    seller, buyer = await register("seller"), await register("buyer")
    r = await client.post("/v1/wallet/topups", json={"amount": 20_000},
                          headers={**buyer.headers, "Idempotency-Key": "fund"})
    assert r.status_code in (200, 201), r.text
    stuck, fine = await _auction(client, seller.headers, "A1"), await _auction(
        client, seller.headers, "B1")
    for auction_id in (stuck, fine):
        r = await client.post(f"/v1/auctions/{auction_id}/bids", headers=buyer.headers,
                              json={"amount": 2_000, "bid_id": str(uuid.uuid4())})
        assert r.status_code == 201, r.text
    # The stuck auction is one made before auctions held their unit (migration 0304), and its
    # item is gone (sold elsewhere): its winner's order cannot be made.
    await rt.pool.execute(
        """WITH a AS (UPDATE auctions SET unit_held = false WHERE id = $1 RETURNING variant_id)
           UPDATE variants SET reserved = reserved - 1, on_hand = 0
           WHERE id = (SELECT variant_id FROM a)""", uuid.UUID(stuck))
    await rt.pool.execute(
        "UPDATE auctions SET ends_at = clock_timestamp() WHERE id = ANY($1::uuid[])",
        [uuid.UUID(stuck), uuid.UUID(fine)])
    deadline = asyncio.get_running_loop().time() + 20 * TIMING_FACTOR
    while True:
        row = await rt.pool.fetchrow(
            "SELECT order_id, payment_state FROM auctions WHERE id = $1", uuid.UUID(fine))
        if row["payment_state"] == "captured":
            break
        assert asyncio.get_running_loop().time() < deadline, "the settleable auction stalled"
        await asyncio.sleep(0.1)
    order = (await client.get(f"/v1/orders/{row['order_id']}", headers=buyer.headers)).json()
    assert order["state"] == "paid"
    stuck_row = await rt.pool.fetchrow(
        "SELECT state, order_id FROM auctions WHERE id = $1", uuid.UUID(stuck))
    assert stuck_row["state"] == "closed"  # closed exactly like the other...
    assert stuck_row["order_id"] is None  # ...but its settlement keeps being retried
    wallet = (await client.get("/v1/wallet", headers=buyer.headers)).json()
    assert order["total"] == 1_000  # a lone proxy bid pays the start price
    assert wallet == {"currency": "USD", "available": 20_000 - order["total"], "held": 0}
