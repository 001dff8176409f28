"""Admin order intervention and the dead-letter list."""

from __future__ import annotations

import uuid

import httpx

from api.ledger import balances
from api.orders import service as order_service
from core.context import Runtime
from tests.commerce.helpers import assert_consistent, buy, fund, make_product, wallet
from tests.conftest import Register


async def test_admin_force_cancel_and_search(
    client: httpx.AsyncClient, register: Register, rt: Runtime
) -> None:
    admin, seller, buyer = await register("admin"), await register("seller"), await register()
    await fund(rt, buyer.id, 5_000)
    product = await make_product(client, seller, stock=5, price=1_000)
    variant = product["variants"][0]["id"]
    first = (await buy(client, buyer, variant)).json()["orders"][0]["id"]
    second = (await buy(client, buyer, variant)).json()["orders"][0]["id"]
    await client.post(f"/v1/orders/{first}/pay", headers=buyer.headers)

    # A forced move needs a reason and is recorded as an admin event.
    r = await client.post(f"/v1/admin/orders/{first}/transition", json={"to": "packed"},
                          headers=admin.headers)
    assert r.status_code == 422
    r = await client.post(f"/v1/admin/orders/{first}/transition",
                          json={"to": "packed", "reason": "seller phoned support"},
                          headers=admin.headers)
    assert r.status_code == 200, r.text
    last = r.json()["events"][-1]
    assert (last["kind"], last["actor_role"], last["actor_id"], last["reason"]) == (
        "admin", "admin", admin.id, "seller phoned support")
    r = await client.post(f"/v1/admin/orders/{first}/transition",
                          json={"to": "pending_payment", "reason": "undo"}, headers=admin.headers)
    assert (r.status_code, r.json()["code"]) == (409, "invalid_transition")

    # Cancel with automatic refund (paid) and release (unpaid).
    r = await client.post(f"/v1/admin/orders/{first}/cancel", json={"reason": "fraud check"},
                          headers=admin.headers)
    assert r.json()["state"] == "refunded"
    r = await client.post(f"/v1/admin/orders/{second}/cancel", json={"reason": "duplicate"},
                          headers=admin.headers)
    assert r.json()["state"] == "cancelled"
    w = await wallet(rt, buyer.id)
    assert (w.available, w.held) == (5_000, 0)

    r = await client.get(f"/v1/admin/orders?buyer_id={buyer.id}&limit=1", headers=admin.headers)
    page = r.json()
    assert len(page["items"]) == 1
    assert page["items"][0]["events"]
    r = await client.get(f"/v1/admin/orders?buyer_id={buyer.id}&cursor={page['next_cursor']}",
                         headers=admin.headers)
    assert len(r.json()["items"]) == 1
    assert r.json()["next_cursor"] is None
    r = await client.get("/v1/admin/orders?state=refunded", headers=admin.headers)
    assert [o["id"] for o in r.json()["items"]] == [first]
    r = await client.get(f"/v1/admin/orders?order_id={second}", headers=admin.headers)
    assert [o["id"] for o in r.json()["items"]] == [second]
    for who in (buyer, seller):
        r = await client.get("/v1/admin/orders", headers=who.headers)
        assert r.status_code == 403
        r = await client.post(f"/v1/admin/orders/{second}/cancel", json={"reason": "x"},
                              headers=who.headers)
        assert r.status_code == 403
    await assert_consistent(rt.pool)


async def test_dead_letters_list_and_replay(
    client: httpx.AsyncClient, register: Register, rt: Runtime
) -> None:
    admin, buyer = await register("admin"), await register()
    dead = await rt.pool.fetchval(
        """INSERT INTO outbox (topic, channels, payload, attempts, last_error, dead_at)
           VALUES ('order.state_changed', '{order:x}', '{"a": 1}', 10, 'boom', now())
           RETURNING id"""
    )
    r = await client.get("/v1/admin/dead-letters", headers=admin.headers)
    assert r.status_code == 200
    [item] = r.json()["items"]
    assert (item["id"], item["last_error"], item["attempts"]) == (dead, "boom", 10)
    assert (await client.get("/v1/admin/dead-letters", headers=buyer.headers)).status_code == 403
    r = await client.post(f"/v1/admin/dead-letters/{dead}/replay", headers=buyer.headers)
    assert r.status_code == 403
    r = await client.post(f"/v1/admin/dead-letters/{dead}/replay", headers=admin.headers)
    assert r.status_code == 202
    row = await rt.pool.fetchrow("SELECT dead_at, attempts FROM outbox WHERE id = $1", dead)
    assert (row["dead_at"], row["attempts"]) == (None, 0)
    r = await client.post(f"/v1/admin/dead-letters/{dead}/replay", headers=admin.headers)
    assert r.status_code == 404  # no longer dead
    assert (await client.get("/v1/admin/dead-letters", headers=admin.headers)).json()[
        "items"] == []


async def test_order_history_is_append_only(
    client: httpx.AsyncClient, register: Register, rt: Runtime
) -> None:
    import asyncpg
    import pytest

    seller, buyer = await register("seller"), await register()
    await fund(rt, buyer.id, 1_000)
    product = await make_product(client, seller, price=1_000)
    await buy(client, buyer, product["variants"][0]["id"])
    for sql in ("UPDATE order_events SET reason = 'edited'", "DELETE FROM order_events"):
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await rt.pool.execute(sql)
    assert await rt.pool.fetchval("SELECT count(*) FROM order_events") == 1


async def test_admin_partial_refunds(
    client: httpx.AsyncClient, register: Register, rt: Runtime
) -> None:
    """An admin refunds part of a paid order (idempotent by key, never more than captured);
    a cancel then refunds only what is left; a delivered order refunded in full in parts is
    settled with nothing to pay out; after settlement a refund comes back from the seller."""
    admin, seller, buyer = await register("admin"), await register("seller"), await register()
    await fund(rt, buyer.id, 10_000)
    variant = (await make_product(client, seller, stock=5, price=1_000))["variants"][0]["id"]

    async def paid_order() -> str:
        order_id: str = (await buy(client, buyer, variant)).json()["orders"][0]["id"]
        r = await client.post(f"/v1/orders/{order_id}/pay", headers=buyer.headers)
        assert r.status_code == 200, r.text
        return order_id

    async def refund(order_id: str, amount: int, key: str | None) -> httpx.Response:
        headers = admin.headers | ({"Idempotency-Key": key} if key else {})
        return await client.post(f"/v1/admin/orders/{order_id}/refunds", headers=headers,
                                 json={"amount": amount, "reason": "scratched lid"})

    first = await paid_order()
    assert (await refund(first, 300, None)).status_code == 422  # a key is required
    r = await refund(first, 300, "r1")
    assert r.status_code == 201, r.text
    assert r.json()["state"] == "paid"
    last = r.json()["events"][-1]
    assert (last["kind"], last["actor_id"], last["reason"], last["to"], last["amount"]) == (
        "refund", admin.id, "scratched lid", "paid", 300)
    assert r.json()["events"][0]["amount"] is None
    assert (await refund(first, 300, "r1")).status_code == 201  # the same key: once
    async with rt.pool.acquire() as conn, conn.transaction():  # as if the key had expired
        rest = await order_service.refund_in_part(
            conn, uuid.UUID(first), 300, reason="scratched lid", transfer_id=uuid.uuid5(
                uuid.UUID(first), "refund:r1"), by=order_service.By(
                    order_service.Actor.ADMIN, uuid.UUID(admin.id), "admin"))
    assert rest == 700
    r = await client.get(f"/v1/orders/{first}", headers=buyer.headers)
    assert [e["amount"] for e in r.json()["events"] if e["kind"] == "refund"] == [300]
    assert (await wallet(rt, buyer.id)).available == 10_000 - 1_000 + 300
    r = await refund(first, 800, "r2")
    assert (r.status_code, r.json()["code"]) == (409, "refund_exceeds_captured")
    r = await client.post(f"/v1/admin/orders/{first}/cancel", json={"reason": "lost parcel"},
                          headers=admin.headers)
    assert r.json()["state"] == "refunded"  # the 700 left
    assert (await wallet(rt, buyer.id)).available == 10_000
    r = await refund(first, 1, "r3")
    assert (r.status_code, r.json()["code"]) == (409, "invalid_transition")
    for who in (buyer, seller):
        r = await client.post(f"/v1/admin/orders/{first}/refunds", json={
            "amount": 1, "reason": "x"}, headers={**who.headers, "Idempotency-Key": "k"})
        assert r.status_code == 403

    async def delivered() -> str:
        order_id = await paid_order()
        for state in ("packed", "out_for_delivery", "delivered"):
            r = await client.post(f"/v1/admin/orders/{order_id}/transition",
                                  json={"to": state, "reason": "test"}, headers=admin.headers)
            assert r.status_code == 200, r.text
        return order_id

    async def seller_payable() -> int:
        return await balances.seller_payable(rt.pool, uuid.UUID(seller.id), "USD")

    async def settle(order_id: str) -> bool:
        async with rt.pool.acquire() as conn, conn.transaction():
            return await order_service.settle(conn, uuid.UUID(order_id), fee_bps=1_000)

    refunded_in_parts = await delivered()
    assert (await refund(refunded_in_parts, 600, "p1")).status_code == 201
    assert (await refund(refunded_in_parts, 400, "p2")).status_code == 201
    assert await settle(refunded_in_parts) is True  # nothing left: settled, no payout
    assert await seller_payable() == 0

    settled = await delivered()
    assert await settle(settled) is True
    assert await seller_payable() == 900  # 1,000 less the 10 % fee
    assert (await refund(settled, 500, "s1")).status_code == 201
    assert await seller_payable() == 450  # half of it back, the fee's share too
    assert (await wallet(rt, buyer.id)).available == 10_000 - 1_000 + 500
    r = await client.get("/v1/admin/ledger/check", headers=admin.headers)
    assert r.json()["ok"] is True
    await assert_consistent(rt.pool)
