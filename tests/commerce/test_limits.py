"""Per-buyer limits on new checkouts and wallet top-ups: a new one past the bucket is refused
with 429 and Retry-After before anything is reserved or charged; replays of a key are free."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from core.config import Settings
from core.context import Runtime
from tests.commerce.helpers import buy, fund, make_product, wallet
from tests.conftest import Register
from tests.support.services import drop_isolation, make_settings


@pytest.fixture
async def settings(key_dir: Path) -> AsyncIterator[Settings]:
    s = make_settings(key_dir, checkout_rate=2, checkout_rate_window_s=600, topup_rate=2,
                      topup_rate_window_s=3600)
    yield s
    await drop_isolation(s)


async def test_new_checkouts_past_the_rate_are_refused_and_replays_are_not_counted(
    client: httpx.AsyncClient, register: Register, rt: Runtime,
) -> None:
    seller, buyer, other = (await register("seller"), await register("buyer"),
                            await register("buyer"))
    for who in (buyer, other):
        await fund(rt, who.id, 100_000)
    variant = (await make_product(client, seller, stock=10))["variants"][0]["id"]
    first = await buy(client, buyer, variant, key="first")
    assert first.status_code == 201, first.text
    replay = await client.post("/v1/checkout", json={},
                               headers={**buyer.headers, "Idempotency-Key": "first"})
    assert replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"
    assert (await buy(client, buyer, variant)).status_code == 201
    refused = await buy(client, buyer, variant)
    assert refused.status_code == 429, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) >= 1
    assert (await wallet(rt, buyer.id)).held == 2 * 1_000  # the refused one holds nothing
    cart = (await client.get("/v1/cart", headers=buyer.headers)).json()
    assert [line["quantity"] for line in cart["items"]] == [1]  # still in the cart
    assert (await buy(client, other, variant)).status_code == 201  # per buyer


async def test_new_top_ups_past_the_rate_are_refused_before_any_charge(
    client: httpx.AsyncClient, register: Register, rt: Runtime,
) -> None:
    buyer = await register("buyer")

    async def topup(key: str) -> httpx.Response:
        return await client.post("/v1/wallet/topups", json={"amount": 5_000},
                                 headers={**buyer.headers, "Idempotency-Key": key})

    assert (await topup("a")).status_code == 201
    assert (await topup("b")).status_code == 201
    assert (await topup("b")).status_code == 201  # a replay: free
    refused = await topup(str(uuid.uuid4()))
    assert refused.status_code == 429, refused.text
    assert refused.json()["code"] == "rate_limited"
    assert (await wallet(rt, buyer.id)).available == 10_000
