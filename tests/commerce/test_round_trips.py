"""Checkout's PostgreSQL round trips stay few: the writes go as one statement (migration 0160).
Counted with asyncpg's query logger on a one-connection pool."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from core.config import Settings
from core.context import Runtime
from tests.commerce.helpers import add_to_cart, fund, make_product
from tests.conftest import Register
from tests.support.services import drop_isolation, make_settings


@pytest.fixture
async def settings(key_dir: Path) -> AsyncIterator[Settings]:
    s = make_settings(key_dir, database_pool_min=1, database_pool_max=1)
    yield s
    await drop_isolation(s)


async def test_a_checkout_is_seven_statements_including_begin_and_commit(
    client: httpx.AsyncClient, register: Register, rt: Runtime,
) -> None:
    seller, buyer = await register("seller"), await register("buyer")
    await fund(rt, buyer.id, 10_000)
    variant = (await make_product(client, seller, stock=10))["variants"][0]["id"]
    for _ in range(2):  # the first one on the connection also introspects the array types
        await add_to_cart(client, buyer, variant)
        seen = await _checkout_statements(client, rt, buyer.headers)
    assert len(seen) == 7, seen  # it was 21
    assert sum("commerce_place_orders" in q for q in seen) == 1, seen


async def _checkout_statements(
    client: httpx.AsyncClient, rt: Runtime, headers: dict[str, str]
) -> list[str]:
    seen: list[str] = []
    async with rt.pool.acquire() as conn:
        conn.add_query_logger(lambda record: seen.append(record.query))
    r = await client.post("/v1/checkout", json={},
                          headers={**headers, "Idempotency-Key": str(uuid.uuid4())})
    assert r.status_code == 201, r.text
    # The checkout's transaction holds the only connection: background work (the outbox
    # relay, job loops) runs before or after it, never inside.
    shapes = [" ".join(q.split())[:40] for q in seen]
    start = next(i for i, q in enumerate(shapes)
                 if q == "BEGIN;" and shapes[i + 1].startswith("INSERT INTO idempotency_keys"))
    # BEGIN, the key, the cart, the writes, the stock, the stored answer, COMMIT
    return shapes[start:shapes.index("COMMIT;", start) + 1]
