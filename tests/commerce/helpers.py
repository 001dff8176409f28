"""Shared helpers for commerce tests: funding wallets, making products, and the consistency
check that must hold at every commit point (read straight from the database)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx

from api.ledger import service as ledger
from api.ledger import store as ledger_store
from core.context import Runtime
from tests.conftest import Account

USD = "USD"


async def fund(rt: Runtime, user_id: str | uuid.UUID, amount: int, currency: str = USD) -> None:
    async with rt.pool.acquire() as conn, conn.transaction():
        await ledger.topup(conn, user_id=uuid.UUID(str(user_id)), amount=amount,
                           currency=currency, transfer_id=uuid.uuid4())


async def wallet(rt: Runtime, user_id: str | uuid.UUID, currency: str = USD) -> ledger.WalletView:
    return await ledger.wallet(rt.pool, uuid.UUID(str(user_id)), currency)


async def make_product(
    client: httpx.AsyncClient, seller: Account, *, stock: int = 5, price: int = 1_000,
    title: str = "Hand-woven scarf", skus: tuple[str, ...] = ("S1",), **extra: Any,
) -> dict[str, Any]:
    body = {"title": title, "variants": [{"sku": s, "price": price, "stock": stock}
                                         for s in skus], **extra}
    r = await client.post("/v1/products", json=body, headers=seller.headers)
    assert r.status_code == 201, r.text
    product: dict[str, Any] = r.json()
    return product


async def add_to_cart(client: httpx.AsyncClient, buyer: Account, variant_id: str,
                      quantity: int = 1) -> None:
    r = await client.post("/v1/cart/items", json={"variant_id": variant_id, "quantity": quantity},
                          headers=buyer.headers)
    assert r.status_code == 200, r.text


async def buy(client: httpx.AsyncClient, buyer: Account, variant_id: str, quantity: int = 1,
              key: str | None = None) -> httpx.Response:
    await add_to_cart(client, buyer, variant_id, quantity)
    headers = {**buyer.headers, "Idempotency-Key": key or str(uuid.uuid4())}
    return await client.post("/v1/checkout", json={}, headers=headers)


async def assert_consistent(conn: asyncpg.Connection | asyncpg.Pool) -> None:
    """Stock, holds, orders and history agree with each other and with the ledger."""
    bad_variants = await conn.fetch(
        """SELECT v.id, v.reserved, coalesce(p.q, 0) AS pending
           FROM variants v
           LEFT JOIN (SELECT l.variant_id, sum(l.quantity) AS q FROM order_lines l
                      JOIN orders o ON o.id = l.order_id AND o.state = 'pending_payment'
                      GROUP BY l.variant_id) p ON p.variant_id = v.id
           WHERE v.reserved <> coalesce(p.q, 0) OR v.on_hand < v.reserved OR v.on_hand < 0"""
    )
    assert [dict(r) for r in bad_variants] == []
    bad_holds = await conn.fetch(
        """SELECT a.owner_id, a.balance, coalesce(o.total, 0) AS pending
           FROM ledger_accounts a
           LEFT JOIN (SELECT buyer_id, currency, sum(total) AS total FROM orders
                      WHERE state = 'pending_payment' GROUP BY buyer_id, currency) o
             ON o.buyer_id = a.owner_id AND o.currency = a.currency
           WHERE a.kind = 'buyer_held' AND a.balance <> coalesce(o.total, 0)"""
    )
    assert [dict(r) for r in bad_holds] == []
    orphans = await conn.fetchval(
        """SELECT count(*) FROM orders o WHERE o.state = 'pending_payment' AND NOT EXISTS (
               SELECT 1 FROM ledger_transfers t WHERE t.order_id = o.id AND t.kind = 'hold')"""
    )
    assert orphans == 0
    history = await conn.fetchval(
        """SELECT count(*) FROM orders o WHERE o.state <> (
               SELECT e.to_state FROM order_events e WHERE e.order_id = o.id
               ORDER BY e.id DESC LIMIT 1)"""
    )
    assert history == 0
    report = await ledger_store.audit(conn)
    assert report["ok"] is True, report
