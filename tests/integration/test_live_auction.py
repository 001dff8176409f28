"""The whole product path over two real server processes sharing PostgreSQL and Redis: a seller
lists an item and auctions it; buyers fund wallets and bid over websockets on different
processes; watchers see every bid in one order; the auction closes once; the winner's order is
paid from the wallet, and its events reach the parties over their channels (and nobody else)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from auctions.model import IncrementTable
from auctions.wire import events_of
from testkit.servers import ServerProcess
from tests.realtime.wsclient import WsClient

PASSWORD = "correct horse battery staple"


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


async def account(http: httpx.AsyncClient, server: ServerProcess, role: str) -> dict[str, Any]:
    email = f"{role}-{uuid.uuid4().hex[:8]}@example.com"
    r = await http.post(server.url + "/v1/auth/register", json={
        "email": email, "password": PASSWORD, "display_name": f"{role} {email[:12]}",
        "role": role})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return {"id": body["user"]["id"], "token": body["access_token"],
            "name": body["user"]["display_name"],
            "headers": {"Authorization": f"Bearer {body['access_token']}"}}


async def fund(http: httpx.AsyncClient, server: ServerProcess, who: dict[str, Any], amount: int) -> None:
    r = await http.post(server.url + "/v1/wallet/topups", json={"amount": amount},
                   headers={**who["headers"], "Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code in (200, 201), r.text


async def wallet(http: httpx.AsyncClient, server: ServerProcess, who: dict[str, Any]) -> dict[str, Any]:
    r = await http.get(server.url + "/v1/wallet", headers=who["headers"])
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


async def next_of(client: WsClient, channel: str, kind: str) -> dict[str, Any]:
    while True:
        [msg] = await client.publications(1, wait_s=20)
        if msg.get("channel") != channel:
            continue
        for event in events_of(msg["data"]):
            if event.get("type") == kind:
                return msg | {"data": event}


async def test_live_auction_end_to_end(servers, http: httpx.AsyncClient) -> None:  # type: ignore[no-untyped-def]
    a, b = servers(), servers()
    seller = await account(http, a, "seller")
    alice, bob = await account(http, a, "buyer"), await account(http, b, "buyer")
    await fund(http, a, alice, 50_000)
    await fund(http, b, bob, 50_000)
    r = await http.post(a.url + "/v1/products", headers=seller["headers"], json={
        "title": "1960s brass lamp", "variants": [{"sku": "LAMP-1", "price": 9_000, "stock": 1}]})
    assert r.status_code == 201, r.text
    variant_id = r.json()["variants"][0]["id"]
    r = await http.post(b.url + "/v1/auctions", headers=seller["headers"], json={
        "variant_id": variant_id, "start_price": 1_000, "duration_s": 6, "soft_close_s": 2})
    assert r.status_code == 201, r.text
    auction_id = r.json()["id"]
    channel = f"auction:{auction_id}"

    watchers = [await WsClient.open(a.ws_url), await WsClient.open(b.ws_url, binary=True)]
    for w in watchers:
        assert "result" in await w.call("subscribe", channel=channel)
    alice_ws = await WsClient.open(a.ws_url, token=alice["token"])
    bob_ws = await WsClient.open(b.ws_url, token=bob["token"])
    assert "result" in await bob_ws.call("subscribe", channel=f"user:{bob['id']}")

    # The seller may not bid on their own auction; bids above the wallet are refused.
    seller_ws = await WsClient.open(b.ws_url, token=seller["token"])
    reply = await seller_ws.call("bid", auction_id=auction_id, amount=2_000,
                                 bid_id=str(uuid.uuid4()))
    assert reply["error"]["code"] == "forbidden", reply  # only buyers bid
    reply = await alice_ws.call("bid", auction_id=auction_id, amount=60_000,
                                bid_id=str(uuid.uuid4()))
    assert reply["error"]["code"] == "insufficient_funds", reply

    acks = []
    for ws, amount in ((alice_ws, 2_000), (bob_ws, 3_000), (alice_ws, 4_500), (bob_ws, 7_000)):
        bid_id = str(uuid.uuid4())
        reply = await ws.call("bid", auction_id=auction_id, amount=amount, bid_id=bid_id)
        assert reply["result"]["accepted"] is True, reply
        acks.append(reply["result"]["seq"])
        retry = await ws.call("bid", auction_id=auction_id, amount=amount, bid_id=bid_id)
        assert retry["result"]["seq"] == reply["result"]["seq"]  # idempotent by bid_id
    assert acks == sorted(acks)

    # Both watchers (JSON on one process, msgpack on the other) see the same bids in one order,
    # with gapless channel offsets, then exactly one close.
    seen: list[list[tuple[int, int]]] = []
    for w in watchers:
        closed = await next_of(w, channel, "closed")
        assert closed["data"]["outcome"] == "sold"
        assert closed["data"]["winner_id"] == bob["id"]
        bids = [(e["seq"], e["price"]) for m in w.inbox for e in events_of(m["data"])
                if e.get("type") == "bid"]
        seen.append(bids)
    assert seen[0] == seen[1]
    assert [s for s, _ in seen[0]] == sorted(s for s, _ in seen[0])
    price = closed["data"]["price"]
    # eBay proxy rule: one increment above Alice's 4,500 maximum, below Bob's 7,000 maximum.
    assert price == 4_500 + IncrementTable().increment(4_500)

    won = await next_of(bob_ws, f"user:{bob['id']}", "auction_won")
    order_id = won["data"]["order_id"]
    r = await http.get(b.url + f"/v1/orders/{order_id}", headers=bob["headers"])
    assert r.status_code == 200
    order = r.json()
    assert order["state"] == "paid" and order["total"] == price
    assert [e["to"] for e in order["events"]][-2:] == ["pending_payment", "paid"]
    assert await wallet(http, a, bob) == {"currency": "USD", "available": 50_000 - price, "held": 0}
    assert (await wallet(http, b, alice))["held"] == 0

    # The order channel is open to its buyer and seller, closed to the losing bidder.
    assert "result" in await bob_ws.call("subscribe", channel=f"order:{order_id}")
    reply = await alice_ws.call("subscribe", channel=f"order:{order_id}")
    assert reply["error"]["code"] == "forbidden", reply
    seller_sub = await seller_ws.call("subscribe", channel=f"order:{order_id}")
    assert "result" in seller_sub
    r = await http.post(a.url + f"/v1/orders/{order_id}/transitions", headers=seller["headers"],
                   json={"to": "packed"})
    assert r.status_code == 200, r.text
    update = await next_of(bob_ws, f"order:{order_id}", "order.state_changed")
    assert update["data"]["to"] == "packed"

    r = await http.get(a.url + f"/v1/auctions/{auction_id}")
    assert r.json()["state"] == "closed"
    for ws in (*watchers, alice_ws, bob_ws, seller_ws):
        await ws.close()
    await asyncio.sleep(0)
