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
    seller, buyer = await register("seller"), await register("buyer")
    rider = await register("rider")
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
    import asyncio

    # Several processes' settlement passes at once: the order is settled exactly once.
    passes = await asyncio.gather(*(
        jobs.settle_delivered(rt.pool, metrics, hold_s=0, fee_bps=1_000, batch=10)
        for _ in range(4)
    ))
    again = await jobs.settle_delivered(rt.pool, metrics, hold_s=0, fee_bps=1_000, batch=10)
    assert (sum(passes), again) == (1, 0)
    from api.ledger import service as ledger

    assert await ledger.seller_payable(rt.pool, uuid.UUID(seller.id), "USD") == 2_250
    r = await client.get(f"/v1/orders/{oid}", headers=buyer.headers)
    assert r.json()["settled_at"] is not None
    assert r.json()["events"][-1]["kind"] == "settled"
    await assert_consistent(rt.pool)


async def test_illegal_transitions_are_refused(
    client: httpx.AsyncClient, register: Register, rt: Runtime
) -> None:
    seller, buyer = await register("seller"), await register("buyer")
    await fund(rt, buyer.id, 5_000)
    product = await make_product(client, seller)
    r = await buy(client, buyer, product["variants"][0]["id"])
    oid = r.json()["orders"][0]["id"]
    # Skipping payment is not an edge of the machine.
    for to in ("packed", "delivered", "refunded"):
        r = await client.post(f"/v1/orders/{oid}/transitions", json={"to": to},
                              headers=seller.headers)
        assert r.status_code == 409, r.text
        assert r.json()["code"] == "invalid_transition"
        assert r.json()["from_state"] == "pending_payment"
    # An edge that exists, but not for the seller.
    r = await client.post(f"/v1/orders/{oid}/transitions", json={"to": "paid"},
                          headers=seller.headers)
    assert (r.status_code, r.json()["code"]) == (403, "transition_not_allowed")
    r = await client.post(f"/v1/orders/{oid}/transitions", json={"to": "shipped"},
                          headers=seller.headers)
    assert r.status_code == 422
    r = await client.post(f"/v1/orders/{oid}/pay", headers=buyer.headers)
    assert r.status_code == 200
    r = await client.post(f"/v1/orders/{oid}/pay", headers=buyer.headers)
    assert (r.status_code, r.json()["code"]) == (409, "invalid_transition")
    # Nothing changed by the refusals: exactly two events.
    r = await client.get(f"/v1/orders/{oid}", headers=buyer.headers)
    assert [e["to"] for e in r.json()["events"]] == ["pending_payment", "paid"]
    await assert_consistent(rt.pool)


async def test_concurrent_pay_and_cancel_one_wins(
    client: httpx.AsyncClient, register: Register, rt: Runtime
) -> None:
    import asyncio

    seller, buyer = await register("seller"), await register("buyer")
    await fund(rt, buyer.id, 5_000)
    product = await make_product(client, seller)
    oid = (await buy(client, buyer, product["variants"][0]["id"])).json()["orders"][0]["id"]
    pay, cancel = await asyncio.gather(
        client.post(f"/v1/orders/{oid}/pay", headers=buyer.headers),
        client.post(f"/v1/orders/{oid}/cancel", headers=buyer.headers),
    )
    assert sorted([pay.status_code, cancel.status_code]) in ([200, 409], [200, 200])
    r = await client.get(f"/v1/orders/{oid}", headers=buyer.headers)
    events = r.json()["events"]
    assert len(events) == len({(e["from"], e["to"]) for e in events})  # no double transition
    await assert_consistent(rt.pool)


async def test_cancel_before_payment_releases_hold_and_stock(
    client: httpx.AsyncClient, register: Register, rt: Runtime
) -> None:
    seller, buyer = await register("seller"), await register("buyer")
    await fund(rt, buyer.id, 5_000)
    product = await make_product(client, seller, stock=2, price=1_500)
    oid = (await buy(client, buyer, product["variants"][0]["id"], 2)).json()["orders"][0]["id"]
    r = await client.post(f"/v1/orders/{oid}/cancel", json={"reason": "changed my mind"},
                          headers=buyer.headers)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "cancelled"
    assert r.json()["events"][-1]["reason"] == "changed my mind"
    w = await wallet(rt, buyer.id)
    assert (w.available, w.held) == (5_000, 0)
    r = await client.get(f"/v1/products/{product['id']}")
    assert r.json()["variants"][0]["stock"] == 2
    await assert_consistent(rt.pool)


async def test_cancel_after_payment_refunds_and_restocks(
    client: httpx.AsyncClient, register: Register, rt: Runtime
) -> None:
    seller, buyer = await register("seller"), await register("buyer")
    await fund(rt, buyer.id, 5_000)
    product = await make_product(client, seller, stock=2, price=1_500)
    oid = (await buy(client, buyer, product["variants"][0]["id"], 1)).json()["orders"][0]["id"]
    assert (await client.post(f"/v1/orders/{oid}/pay", headers=buyer.headers)).status_code == 200
    r = await client.post(f"/v1/orders/{oid}/cancel", headers=seller.headers)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "refunded"
    w = await wallet(rt, buyer.id)
    assert (w.available, w.held) == (5_000, 0)
    stock = await rt.pool.fetchrow("SELECT on_hand, reserved, sold FROM variants")
    assert dict(stock) == {"on_hand": 2, "reserved": 0, "sold": 0}
    # A refunded order is final.
    r = await client.post(f"/v1/orders/{oid}/cancel", headers=seller.headers)
    assert (r.status_code, r.json()["code"]) == (409, "invalid_transition")
    await assert_consistent(rt.pool)


async def test_idempotent_checkout_and_refusals_leave_nothing(
    client: httpx.AsyncClient, register: Register, rt: Runtime
) -> None:
    seller, buyer = await register("seller"), await register("buyer")
    other_seller = await register("seller")
    await fund(rt, buyer.id, 3_000)
    a = await make_product(client, seller, price=1_000)
    b = await make_product(client, other_seller, price=500)
    r = await buy(client, buyer, a["variants"][0]["id"], key="same-key")
    assert r.status_code == 201
    first = r.json()
    # A retry with the same key returns the same orders and changes nothing.
    headers = {**buyer.headers, "Idempotency-Key": "same-key"}
    again = await client.post("/v1/checkout", json={}, headers=headers)
    assert again.status_code == 201
    assert again.json() == first
    assert again.headers["idempotent-replayed"] == "true"
    assert await rt.pool.fetchval("SELECT count(*) FROM orders") == 1
    # Same key, different body: refused.
    r = await client.post("/v1/checkout", json={"x": 1}, headers=headers)
    assert r.status_code in (409, 422)
    # Two sellers in one cart: two orders, one hold each.
    from tests.commerce.helpers import add_to_cart

    await add_to_cart(client, buyer, a["variants"][0]["id"])
    await add_to_cart(client, buyer, b["variants"][0]["id"], 2)
    r = await client.post("/v1/checkout", headers={**buyer.headers, "Idempotency-Key": "k2"})
    assert r.status_code == 201, r.text
    totals = sorted(o["total"] for o in r.json()["orders"])
    assert totals == [1_000, 1_000]
    w = await wallet(rt, buyer.id)
    assert (w.available, w.held) == (0, 3_000)
    # Broke now: 402 and nothing left behind (no order, no hold, no reservation, cart kept).
    await add_to_cart(client, buyer, a["variants"][0]["id"])
    r = await client.post("/v1/checkout", headers={**buyer.headers, "Idempotency-Key": "k3"})
    assert (r.status_code, r.json()["code"]) == (402, "insufficient_funds")
    assert await rt.pool.fetchval("SELECT count(*) FROM orders") == 3
    assert len((await client.get("/v1/cart", headers=buyer.headers)).json()["items"]) == 1
    r = await client.post("/v1/checkout", headers={**buyer.headers, "Idempotency-Key": "k3"})
    assert r.status_code == 402  # a failed attempt stored nothing: the retry runs again
    # Empty cart.
    await client.delete(f"/v1/cart/items/{a['variants'][0]['id']}", headers=buyer.headers)
    r = await client.post("/v1/checkout", headers={**buyer.headers, "Idempotency-Key": "k4"})
    assert (r.status_code, r.json()["code"]) == (409, "cart_empty")
    await assert_consistent(rt.pool)


async def test_expired_reservations_are_released_once(
    client: httpx.AsyncClient, register: Register, rt: Runtime
) -> None:
    import asyncio

    seller, buyer = await register("seller"), await register("buyer")
    await fund(rt, buyer.id, 5_000)
    product = await make_product(client, seller, stock=3)
    variant = product["variants"][0]["id"]
    oid = (await buy(client, buyer, variant, 2)).json()["orders"][0]["id"]
    keep = (await buy(client, buyer, variant, 1)).json()["orders"][0]["id"]
    metrics = CommerceMetrics(rt.metrics.registry.__class__())
    assert await jobs.expire_reservations(rt.pool, metrics, batch=10) == 0
    await rt.pool.execute(
        "UPDATE orders SET reserved_until = now() - interval '1 second' WHERE id = $1",
        uuid.UUID(oid),
    )
    # Several processes' sweeps at once: the order is cancelled exactly once.
    results = await asyncio.gather(*(
        jobs.expire_reservations(rt.pool, metrics, batch=10) for _ in range(4)
    ))
    assert sum(results) == 1
    r = await client.get(f"/v1/orders/{oid}", headers=buyer.headers)
    assert r.json()["state"] == "cancelled"
    assert r.json()["events"][-1] == {**r.json()["events"][-1], "kind": "system",
                                      "reason": "reservation_expired", "actor_role": "system"}
    # Paying an expired order is refused; the other order is untouched.
    r = await client.post(f"/v1/orders/{oid}/pay", headers=buyer.headers)
    assert (r.status_code, r.json()["code"]) == (409, "invalid_transition")
    r = await client.get(f"/v1/orders/{keep}", headers=buyer.headers)
    assert r.json()["state"] == "pending_payment"
    w = await wallet(rt, buyer.id)
    assert (w.available, w.held) == (4_000, 1_000)
    await assert_consistent(rt.pool)


async def test_admin_refunds_a_settled_order(
    client: httpx.AsyncClient, register: Register, rt: Runtime
) -> None:
    from api.ledger import service as ledger
    from api.orders import store

    admin, seller, buyer = await register("admin"), await register("seller"), await register()
    await fund(rt, buyer.id, 2_000)
    product = await make_product(client, seller, price=2_000)
    oid = (await buy(client, buyer, product["variants"][0]["id"])).json()["orders"][0]["id"]
    await client.post(f"/v1/orders/{oid}/pay", headers=buyer.headers)
    for to in ("packed", "out_for_delivery", "delivered"):
        r = await client.post(f"/v1/admin/orders/{oid}/transition",
                              json={"to": to, "reason": "ops"}, headers=admin.headers)
        assert r.status_code == 200, r.text
    metrics = CommerceMetrics(rt.metrics.registry.__class__())
    assert await jobs.settle_delivered(rt.pool, metrics, hold_s=0, fee_bps=500, batch=5) == 1
    assert await ledger.seller_payable(rt.pool, uuid.UUID(seller.id), "USD") == 1_900
    r = await client.post(f"/v1/orders/{oid}/transitions", json={"to": "refunded"},
                          headers=seller.headers)
    assert (r.status_code, r.json()["code"]) == (403, "transition_not_allowed")
    r = await client.post(f"/v1/admin/orders/{oid}/cancel", json={"reason": "never arrived"},
                          headers=admin.headers)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "refunded"
    w = await wallet(rt, buyer.id)
    assert (w.available, w.held) == (2_000, 0)
    assert await ledger.seller_payable(rt.pool, uuid.UUID(seller.id), "USD") == 0
    assert await store.parties(rt.pool, uuid.UUID(oid)) == (
        uuid.UUID(buyer.id), uuid.UUID(seller.id), None)
    await assert_consistent(rt.pool)


async def test_order_for_an_auction_win(
    client: httpx.AsyncClient, register: Register, rt: Runtime
) -> None:
    import pytest

    from api.checkout.errors import OutOfStock
    from api.checkout.service import place_item_order

    seller, buyer = await register("seller"), await register("buyer")
    await fund(rt, buyer.id, 5_000)
    product = await make_product(client, seller, stock=1, price=1_000)
    variant = uuid.UUID(product["variants"][0]["id"])
    async with rt.pool.acquire() as conn, conn.transaction():
        placed = await place_item_order(conn, buyer_id=uuid.UUID(buyer.id), variant_id=variant,
                                        unit_price=3_700, reservation_ttl_s=600)
    assert (placed.total, placed.state) == (3_700, "pending_payment")
    w = await wallet(rt, buyer.id)
    assert (w.available, w.held) == (1_300, 3_700)
    with pytest.raises(OutOfStock):
        async with rt.pool.acquire() as conn, conn.transaction():
            await place_item_order(conn, buyer_id=uuid.UUID(buyer.id), variant_id=variant,
                                   unit_price=100, reservation_ttl_s=600)
    r = await client.post(f"/v1/orders/{placed.id}/pay", headers=buyer.headers)
    assert r.status_code == 200
    assert r.json()["lines"][0]["unit_price"] == 3_700
    await assert_consistent(rt.pool)


async def test_two_checkouts_of_one_cart_make_one_set_of_orders(
    client: httpx.AsyncClient, register: Register, rt: Runtime
) -> None:
    import asyncio

    from tests.commerce.helpers import add_to_cart

    seller, buyer = await register("seller"), await register("buyer")
    await fund(rt, buyer.id, 5_000)
    product = await make_product(client, seller, stock=5)
    await add_to_cart(client, buyer, product["variants"][0]["id"], 2)
    first, second = await asyncio.gather(*(
        client.post("/v1/checkout", json={}, headers={**buyer.headers, "Idempotency-Key": k})
        for k in ("tab-1", "tab-2")
    ))
    assert sorted([first.status_code, second.status_code]) == [201, 409]
    loser = first if first.status_code == 409 else second
    assert loser.json()["code"] == "cart_empty"
    assert await rt.pool.fetchval("SELECT count(*) FROM orders") == 1
    w = await wallet(rt, buyer.id)
    assert (w.available, w.held) == (3_000, 2_000)
    await assert_consistent(rt.pool)

