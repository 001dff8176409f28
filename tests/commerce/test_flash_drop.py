"""Flash drop on the real database: 5 units, 500 buyers checking out at once over HTTP."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from core.auth import Role
from core.config import Settings
from core.context import Runtime
from tests.commerce.helpers import assert_consistent, fund, make_product
from tests.conftest import Register
from tests.support.services import drop_isolation, make_settings

BUYERS = 500
UNITS = 5
PRICE = 2_000


@pytest.fixture
async def settings(key_dir: Path) -> AsyncIterator[Settings]:
    """A bigger pool than the default, so 500 requests really contend for the stock row."""
    s = make_settings(key_dir, database_pool_max=20)
    yield s
    await drop_isolation(s)


async def _buyers(rt: Runtime, n: int) -> list[tuple[uuid.UUID, dict[str, str]]]:
    """n buyer accounts made directly in the database (password hashing 500 times would only
    slow the test down), each signed in and funded for one unit."""
    rows = await rt.pool.fetch(
        """INSERT INTO users (email, email_normalized, password_hash, display_name, role)
           SELECT 'flash' || i || '@example.com', 'flash' || i || '@example.com', 'x',
                  'Flash ' || i, 'buyer'
           FROM generate_series(1, $1) AS i RETURNING id""",
        n,
    )
    ids = [r["id"] for r in rows]
    sem = asyncio.Semaphore(10)

    async def top_up(user_id: uuid.UUID) -> None:
        async with sem:
            await fund(rt, user_id, PRICE)

    await asyncio.gather(*(top_up(i) for i in ids))
    return [(i, {"Authorization": f"Bearer {rt.tokens.issue(i, Role.BUYER)}"}) for i in ids]


async def test_flash_drop_sells_exactly_the_stock(
    client: httpx.AsyncClient, register: Register, rt: Runtime
) -> None:
    seller = await register("seller")
    product = await make_product(client, seller, stock=UNITS, price=PRICE, title="Flash drop")
    variant = product["variants"][0]["id"]
    buyers = await _buyers(rt, BUYERS)
    adds = await asyncio.gather(*(
        client.post("/v1/cart/items", json={"variant_id": variant, "quantity": 1}, headers=h)
        for _, h in buyers
    ))
    assert {r.status_code for r in adds} == {200}

    responses = await asyncio.gather(*(
        client.post("/v1/checkout", json={},
                    headers={**h, "Idempotency-Key": f"flash-{i}"})
        for i, h in buyers
    ))

    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: UNITS, 409: BUYERS - UNITS}, statuses
    for (_buyer_id, _), r in zip(buyers, responses, strict=True):
        if r.status_code == 409:
            assert r.headers["content-type"] == "application/problem+json"
            problem = r.json()
            assert problem["code"] == "out_of_stock"
            assert problem["variant_id"] == variant
    orders = await rt.pool.fetch("SELECT buyer_id, state, total FROM orders")
    assert len(orders) == UNITS
    winners = {r["buyer_id"] for r in orders}
    assert winners == {b for (b, _), r in zip(buyers, responses, strict=True)
                       if r.status_code == 201}
    held = await rt.pool.fetch(
        "SELECT owner_id, balance FROM ledger_accounts WHERE kind = 'buyer_held'"
    )
    for row in held:  # winners hold the price; every other buyer holds nothing
        assert row["balance"] == (PRICE if row["owner_id"] in winners else 0)
    wallets = await rt.pool.fetch(
        "SELECT owner_id, balance FROM ledger_accounts WHERE kind = 'buyer_wallet'"
    )
    assert len(wallets) == BUYERS
    for row in wallets:
        assert row["balance"] == (0 if row["owner_id"] in winners else PRICE)
    losers = [h for (b, h) in buyers if b not in winners]
    for h in losers[:25]:  # and as the buyers themselves see it
        r = await client.get("/v1/wallet", headers=h)
        assert (r.json()["available"], r.json()["held"]) == (PRICE, 0)
    stock = await rt.pool.fetchrow("SELECT on_hand, reserved, sold FROM variants WHERE id = $1",
                                   uuid.UUID(variant))
    assert dict(stock) == {"on_hand": UNITS, "reserved": UNITS, "sold": 0}
    r = await client.get(f"/v1/products/{product['id']}")
    assert r.json()["variants"][0]["stock"] == 0
    assert await rt.pool.fetchval(
        "SELECT count(*) FROM variants WHERE on_hand < 0 OR reserved < 0 OR sold < 0") == 0
    await assert_consistent(rt.pool)

    # The winners pay: every unit is sold exactly once.
    headers = dict(buyers)
    for row in orders:
        order_id = await rt.pool.fetchval("SELECT id FROM orders WHERE buyer_id = $1",
                                          row["buyer_id"])
        r = await client.post(f"/v1/orders/{order_id}/pay", headers=headers[row["buyer_id"]])
        assert r.status_code == 200, r.text
    stock = await rt.pool.fetchrow("SELECT on_hand, reserved, sold FROM variants WHERE id = $1",
                                   uuid.UUID(variant))
    assert dict(stock) == {"on_hand": 0, "reserved": 0, "sold": UNITS}
    await assert_consistent(rt.pool)
