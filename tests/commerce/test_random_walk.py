"""Random walks of checkouts, payments, cancellations, expiries and restocks (some of them
concurrent) over HTTP, checked after every step against a simple reference model of stock and
wallets, and against the database's own consistency (stock vs. open orders vs. holds vs. the
ledger)."""

from __future__ import annotations

import asyncio
import random
import uuid
from dataclasses import dataclass, field

import httpx
import pytest

from api.orders import jobs
from api.orders.metrics import CommerceMetrics
from core.context import Runtime
from tests.commerce.helpers import add_to_cart, assert_consistent, fund, make_product, wallet
from tests.conftest import Account, Register

FUNDS = 6_000


@dataclass
class Model:
    on_hand: dict[str, int]
    reserved: dict[str, int] = field(default_factory=dict)
    sold: dict[str, int] = field(default_factory=dict)
    price: dict[str, int] = field(default_factory=dict)
    available: dict[str, int] = field(default_factory=dict)  # buyer wallet
    held: dict[str, int] = field(default_factory=dict)
    orders: dict[str, tuple[str, str, str, int]] = field(default_factory=dict)  # id → (state,
    # buyer, variant, quantity)

    def free(self, v: str) -> int:
        return self.on_hand[v] - self.reserved.get(v, 0)


async def _checkout(client: httpx.AsyncClient, m: Model, b: Account, v: str, q: int,
                    expect: bool = True) -> None:
    await add_to_cart(client, b, v, q)
    r = await client.post("/v1/checkout", json={},
                          headers={**b.headers, "Idempotency-Key": uuid.uuid4().hex})
    total = m.price[v] * q
    if r.status_code == 201:
        assert m.free(v) >= q and m.available[b.id] >= total
        [order] = r.json()["orders"]
        m.orders[order["id"]] = ("pending_payment", b.id, v, q)
        m.reserved[v] = m.reserved.get(v, 0) + q
        m.available[b.id] -= total
        m.held[b.id] += total
    else:
        code = r.json()["code"]
        assert code in ("out_of_stock", "insufficient_funds"), r.text
        if expect:  # sequential: the model says exactly which refusal (money is held first)
            short_of_money = m.available[b.id] < total
            assert code == ("insufficient_funds" if short_of_money else "out_of_stock"), code
            assert short_of_money or m.free(v) < q
        await client.delete(f"/v1/cart/items/{v}", headers=b.headers)


def _settle(m: Model, oid: str, to: str) -> None:
    _, buyer, v, q = m.orders[oid]
    total = m.price[v] * q
    if to == "paid":
        m.reserved[v] -= q
        m.on_hand[v] -= q
        m.sold[v] = m.sold.get(v, 0) + q
        m.held[buyer] -= total
    elif to == "cancelled":
        m.reserved[v] -= q
        m.held[buyer] -= total
        m.available[buyer] += total
    elif to == "refunded":
        m.on_hand[v] += q
        m.sold[v] -= q
        m.available[buyer] += total
    m.orders[oid] = (to, buyer, v, q)


async def _check(rt: Runtime, m: Model, buyers: list[Account]) -> None:
    rows = await rt.pool.fetch("SELECT id, on_hand, reserved, sold FROM variants")
    for r in rows:
        v = str(r["id"])
        assert (r["on_hand"], r["reserved"], r["sold"]) == (
            m.on_hand[v], m.reserved.get(v, 0), m.sold.get(v, 0)), v
    for b in buyers:
        w = await wallet(rt, b.id)
        assert (w.available, w.held) == (m.available[b.id], m.held[b.id])
    await assert_consistent(rt.pool)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
async def test_random_walk_matches_the_model(
    seed: int, client: httpx.AsyncClient, register: Register, rt: Runtime
) -> None:
    rng = random.Random(seed)
    seller = await register("seller")
    buyers = [await register("buyer") for _ in range(4)]
    products = [await make_product(client, seller, stock=s, price=p, skus=(f"V{i}",))
                for i, (s, p) in enumerate(((6, 700), (3, 1_100)))]
    variants = [p["variants"][0]["id"] for p in products]
    m = Model(on_hand={v: p["variants"][0]["stock"] for v, p in zip(variants, products,
                                                                     strict=True)})
    m.price = {v: p["variants"][0]["price"] for v, p in zip(variants, products, strict=True)}
    for b in buyers:
        await fund(rt, b.id, FUNDS)
        m.available[b.id], m.held[b.id] = FUNDS, 0
    metrics = CommerceMetrics(rt.metrics.registry.__class__())
    by_id = {b.id: b for b in buyers}

    for _ in range(30):
        op = rng.choice(["checkout", "checkout", "burst", "pay", "cancel", "expire", "restock"])
        pending = [o for o, (s, *_) in m.orders.items() if s == "pending_payment"]
        paid = [o for o, (s, *_) in m.orders.items() if s == "paid"]
        if op == "checkout":
            await _checkout(client, m, rng.choice(buyers), rng.choice(variants),
                            rng.randint(1, 3))
        elif op == "burst":  # three buyers race for the same variant
            v, q = rng.choice(variants), rng.randint(1, 2)
            free_before = m.free(v)
            racers = rng.sample(buyers, 3)
            await asyncio.gather(*(_checkout(client, m, b, v, q, expect=False) for b in racers))
            assert m.reserved.get(v, 0) <= m.on_hand[v]
            assert free_before - m.free(v) <= free_before
        elif op == "pay" and pending:
            oid = rng.choice(pending)
            buyer = by_id[m.orders[oid][1]]
            r = await client.post(f"/v1/orders/{oid}/pay", headers=buyer.headers)
            assert r.status_code == 200, r.text
            _settle(m, oid, "paid")
        elif op == "cancel" and (pending or paid):
            oid = rng.choice(pending + paid)
            r = await client.post(f"/v1/orders/{oid}/cancel",
                                  headers=by_id[m.orders[oid][1]].headers)
            assert r.status_code == 200, r.text
            _settle(m, oid, r.json()["state"])
        elif op == "expire" and pending:
            oid = rng.choice(pending)
            await rt.pool.execute("UPDATE orders SET reserved_until = now() WHERE id = $1",
                                  uuid.UUID(oid))
            assert await jobs.expire_reservations(rt.pool, metrics, batch=10) == 1
            _settle(m, oid, "cancelled")
        elif op == "restock":
            v, n = rng.choice(variants), rng.randint(0, 4)
            pid = products[variants.index(v)]["id"]
            r = await client.patch(f"/v1/products/{pid}/variants/{v}", json={"stock": n},
                                   headers=seller.headers)
            assert r.status_code == 200, r.text
            m.on_hand[v] = m.reserved.get(v, 0) + n
        await _check(rt, m, buyers)
