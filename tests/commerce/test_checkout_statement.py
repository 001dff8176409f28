"""Checkout's writes in one statement (migration 0160): what it records, and the sold-out cart
refused before anything is written."""

from __future__ import annotations

import httpx

from core.context import Runtime
from tests.commerce.helpers import add_to_cart, assert_consistent, buy, fund, make_product, wallet
from tests.conftest import Register


async def test_checkout_records_orders_history_hold_and_events_together(
    client: httpx.AsyncClient, register: Register, rt: Runtime,
) -> None:
    seller_a, seller_b, buyer = (await register("seller"), await register("seller"),
                                 await register("buyer"))
    await fund(rt, buyer.id, 5_000)
    a = await make_product(client, seller_a, price=1_000)
    b = await make_product(client, seller_b, price=700)
    await add_to_cart(client, buyer, a["variants"][0]["id"], quantity=2)
    r = await buy(client, buyer, b["variants"][0]["id"])
    assert r.status_code == 201, r.text
    orders = r.json()["orders"]
    assert sorted(o["total"] for o in orders) == [700, 2_000]
    assert [o["seller_id"] for o in orders] == sorted(o["seller_id"] for o in orders)
    assert all(o["reserved_until"].endswith("Z") for o in orders)
    view = await wallet(rt, buyer.id)
    assert (view.available, view.held) == (2_300, 2_700)
    async with rt.pool.acquire() as conn:
        created = await conn.fetch(
            "SELECT payload FROM outbox WHERE topic = 'order.created' ORDER BY id")
        assert sorted(e["payload"]["order_id"] for e in created) == sorted(
            o["id"] for o in orders)
        assert {e["payload"]["to"] for e in created} == {"pending_payment"}
        assert all(e["payload"]["at"].endswith("Z") for e in created)
        changed = await conn.fetch(
            "SELECT payload FROM outbox WHERE topic = 'wallet.changed' "
            "AND payload->>'kind' = 'hold' ORDER BY id")
        assert [e["payload"]["available"] + e["payload"]["held"] for e in changed] == [5_000] * 2
        assert changed[-1]["payload"]["held"] == 2_700
        funds = await conn.fetch("SELECT state, held FROM ledger_order_funds ORDER BY held")
        assert [(f["state"], f["held"]) for f in funds] == [("held", 700), ("held", 2_000)]
        history = await conn.fetchval(
            "SELECT count(*) FROM order_events WHERE kind = 'created' AND actor_id = $1",
            buyer.id)
        assert history == 2
        assert await conn.fetchval("SELECT count(*) FROM cart_items") == 0
        await assert_consistent(conn)


async def test_a_sold_out_cart_is_refused_before_anything_is_written(
    client: httpx.AsyncClient, register: Register, rt: Runtime,
) -> None:
    seller, first, late = (await register("seller"), await register("buyer"),
                           await register("buyer"))
    await fund(rt, first.id, 5_000)
    await fund(rt, late.id, 5_000)
    variant = (await make_product(client, seller, stock=1, price=1_000))["variants"][0]["id"]
    await add_to_cart(client, late, variant)
    assert (await buy(client, first, variant)).status_code == 201
    outbox_before = await rt.pool.fetchval("SELECT count(*) FROM outbox")
    r = await client.post("/v1/checkout", json={}, headers=late.headers)
    assert r.status_code == 409 and r.json()["code"] == "out_of_stock"
    assert await rt.pool.fetchval("SELECT count(*) FROM orders") == 1
    assert await rt.pool.fetchval("SELECT count(*) FROM outbox") == outbox_before
    assert (await wallet(rt, late.id)).held == 0
    assert await rt.pool.fetchval("SELECT count(*) FROM cart_items WHERE buyer_id = $1",
                                  late.id) == 1
