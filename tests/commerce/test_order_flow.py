"""Checkout, payment and the order life cycle over HTTP against real PostgreSQL."""

from __future__ import annotations

import uuid

import httpx

from api.orders import jobs
from api.orders.metrics import CommerceMetrics
from core.context import Runtime
from tests.commerce.helpers import assert_consistent, buy, fund, make_product, wallet
from tests.conftest import Register


async def test_full_life_cycle_and_settlement(
    client: httpx.AsyncClient, register: Register, rt: Runtime
) -> None:
    seller, buyer, rider = await register("seller"), await register("buyer"), await register("rider")
    await fund(rt, buyer.id, 10_000)
    product = await make_product(client, seller, stock=3, price=1_250)
    variant = product["variants"][0]["id"]
    r = await buy(client, buyer, variant, 2)
    assert r.status_code == 201, r.text
    [order] = r.json()["orders"]
    assert (order["state"], order["total"]) == ("pending_payment", 2_500)
    w = await wallet(rt, buyer.id)
    assert (w.available, w.held) == (7_500, 2_500)
    r = await client.get(f"/v1/products/{product['id']}")
    assert r.json()["variants"][0]["stock"] == 1

    oid = order["id"]
    r = await client.post(f"/v1/orders/{oid}/pay", headers=buyer.headers)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "paid"
    w = await wallet(rt, buyer.id)
    assert (w.available, w.held) == (7_500, 0)

    r = await client.post(f"/v1/orders/{oid}/transitions", json={"to": "packed"},
                          headers=seller.headers)
    assert r.status_code == 200, r.text
    r = await client.post(f"/v1/orders/{oid}/assign-rider", json={"rider_id": rider.id},
                          headers=seller.headers)
    assert r.status_code == 200, r.text
    assert r.json()["rider_id"] == rider.id
    r = await client.post(f"/v1/orders/{oid}/transitions", json={"to": "out_for_delivery"},
                          headers=rider.headers)
    assert r.status_code == 200, r.text
    r = await client.post(f"/v1/orders/{oid}/transitions", json={"to": "delivered"},
                          headers=rider.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["state"] == "delivered"
    assert [(e["from"], e["to"], e["kind"], e["actor_role"]) for e in body["events"]] == [
        (None, "pending_payment", "created", "buyer"),
        ("pending_payment", "paid", "transition", "buyer"),
        ("paid", "packed", "transition", "seller"),
        ("packed", "packed", "rider_assigned", "seller"),
        ("packed", "out_for_delivery", "transition", "rider"),
        ("out_for_delivery", "delivered", "transition", "rider"),
    ]
    # Every state change also wrote one outbox event on the order's and the buyer's channels.
    topics = await rt.pool.fetch(
        "SELECT topic, channels FROM outbox WHERE payload->>'order_id' = $1 ORDER BY id", oid
    )
    assert len(topics) == 6
    assert all(f"order:{oid}" in t["channels"] and f"user:{buyer.id}" in t["channels"]
               for t in topics)

    # Settlement: not before the holding period, exactly once after it.
    metrics = CommerceMetrics(rt.metrics.registry.__class__())
    assert await jobs.settle_delivered(rt.pool, metrics, hold_s=3600, fee_bps=1_000,
                                       batch=10) == 0
    settled = await jobs.settle_delivered(rt.pool, metrics, hold_s=0, fee_bps=1_000, batch=10)
    again = await jobs.settle_delivered(rt.pool, metrics, hold_s=0, fee_bps=1_000, batch=10)
    assert (settled, again) == (1, 0)
    from api.ledger import service as ledger

    assert await ledger.seller_payable(rt.pool, uuid.UUID(seller.id), "USD") == 2_250
    r = await client.get(f"/v1/orders/{oid}", headers=buyer.headers)
    assert r.json()["settled_at"] is not None
    assert r.json()["events"][-1]["kind"] == "settled"
    await assert_consistent(rt.pool)
