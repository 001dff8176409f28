"""Order changes reach the outbox relay's handlers (the real-time hub's publisher in
production) with the order's and the parties' channels, in commit order."""

from __future__ import annotations

import asyncio
import time

import httpx
from starlette.applications import Starlette

from core.context import Runtime
from core.outbox import OutboxEvent
from tests.commerce.helpers import buy, fund, make_product
from tests.conftest import TIMING_FACTOR, Register


async def test_transitions_are_relayed_on_order_and_user_channels(
    app: Starlette, client: httpx.AsyncClient, register: Register, rt: Runtime
) -> None:
    seen: list[OutboxEvent] = []

    async def collect(event: OutboxEvent) -> None:
        if event.topic.startswith("order."):
            seen.append(event)

    app.state.relay.add_handler(collect)
    seller, buyer = await register("seller"), await register("buyer")
    await fund(rt, buyer.id, 1_000)
    product = await make_product(client, seller, price=1_000)
    order_id = (await buy(client, buyer, product["variants"][0]["id"])).json()["orders"][0]["id"]
    await client.post(f"/v1/orders/{order_id}/pay", headers=buyer.headers)
    await client.post(f"/v1/orders/{order_id}/transitions", json={"to": "packed"},
                      headers=seller.headers)
    deadline = time.monotonic() + 20 * TIMING_FACTOR
    while len(seen) < 3:
        assert time.monotonic() < deadline, [e.topic for e in seen]
        await asyncio.sleep(0.05)
    assert [(e.payload["from"], e.payload["to"]) for e in seen] == [
        (None, "pending_payment"), ("pending_payment", "paid"), ("paid", "packed")]
    for e in seen:
        assert e.payload["order_id"] == order_id
        assert {f"order:{order_id}", f"user:{buyer.id}", f"user:{seller.id}"} <= set(e.channels)
