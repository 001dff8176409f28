"""The auction HTTP routes and the websocket `bid` op factory."""

from __future__ import annotations

import ast
import uuid
from pathlib import Path

import httpx
import pytest

from auctions.errors import BidTooLow
from core.errors import Unauthorized, ValidationFailed
from tests.auctions.conftest import Env
from tests.conftest import Register


async def _create(client: httpx.AsyncClient, env: Env, seller: object, **body: object) -> dict:
    variant = env.variants.add(uuid.UUID(seller.id))  # type: ignore[attr-defined]
    payload = {"variant_id": str(variant), "start_price": 1_000, "duration_s": 30} | body
    r = await client.post("/v1/auctions", json=payload, headers=seller.headers)  # type: ignore[attr-defined]
    assert r.status_code == 201, r.text
    return dict(r.json())


async def test_create_get_bid_history_audit(client: httpx.AsyncClient, env: Env,
                                            register: Register) -> None:
    seller, admin = await register("seller"), await register("admin")
    buyer = await register("buyer", name="Nour")
    env.funds.credit(uuid.UUID(buyer.id), 100_000)
    created = await _create(client, env, seller, reserve_price=50_000, buy_now_price=90_000)
    assert created["state"] == "open"
    assert {"id", "state", "ends_at", "price", "leader", "seq"} <= created.keys()
    assert 50_000 not in created.values()  # the reserve stays hidden
    assert created["has_reserve"] is True
    aid = created["id"]
    headers = buyer.headers | {"Idempotency-Key": "tap-1"}
    r = await client.post(f"/v1/auctions/{aid}/bids", json={"amount": 1_000, "kind": "next"},
                          headers=headers)
    assert r.status_code == 201, r.text
    assert r.json()["accepted"] is True
    assert r.json()["seq"] == 1
    again = await client.post(f"/v1/auctions/{aid}/bids", json={"amount": 1_000,
                                                                "kind": "next"},
                              headers=headers)
    assert again.status_code == 200
    assert again.json()["replayed"] is True
    assert again.json()["seq"] == 1
    reused = await client.post(f"/v1/auctions/{aid}/bids", json={"amount": 7_000},
                               headers=headers)
    assert reused.status_code == 409
    assert reused.json()["code"] == "idempotency_key_reused"
    low = await client.post(f"/v1/auctions/{aid}/bids",
                            json={"amount": 1_000, "bid_id": str(uuid.uuid4())},
                            headers=buyer.headers)
    assert low.status_code == 409
    assert low.json()["code"] == "bid_too_low"
    state = (await client.get(f"/v1/auctions/{aid}")).json()
    assert (state["state"], state["price"], state["leader"], state["seq"]) == ("open", 1_000,
                                                                             "Nour", 1)
    assert state["buy_now_price"] is None  # gone with the first bid
    history = (await client.get(f"/v1/auctions/{aid}/bids")).json()["items"]
    assert [(b["seq"], b["price"], b["leader"]) for b in history] == [(1, 1_000, "Nour")]
    forbidden = await client.get(f"/v1/auctions/{aid}/attempts", headers=buyer.headers)
    assert forbidden.status_code == 403
    audit = (await client.get(f"/v1/auctions/{aid}/attempts", headers=admin.headers)).json()
    assert [a["outcome"] for a in audit["items"]] == [
        "accepted", "duplicate", "idempotency_key_reused", "bid_too_low"]


async def test_route_auth_and_validation(client: httpx.AsyncClient, env: Env,
                                         register: Register) -> None:
    seller, other_seller = await register("seller"), await register("seller")
    buyer, admin = await register("buyer"), await register("admin")
    variant = env.variants.add(uuid.UUID(seller.id))
    body = {"variant_id": str(variant), "start_price": 1_000, "duration_s": 30}
    assert (await client.post("/v1/auctions", json=body)).status_code == 401
    assert (await client.post("/v1/auctions", json=body, headers=buyer.headers)).status_code == 403
    r = await client.post("/v1/auctions", json=body, headers=other_seller.headers)
    assert r.status_code == 422  # not their variant
    bad = await client.post("/v1/auctions", json=body | {"duration_s": 1}, headers=seller.headers)
    assert bad.status_code == 422
    bad = await client.post("/v1/auctions", json=body | {"buy_now_price": 500},
                            headers=seller.headers)
    assert bad.status_code == 422
    bad = await client.post("/v1/auctions", json=body | {"increments": [[5, 10]]},
                            headers=seller.headers)
    assert bad.status_code == 422
    bad = await client.post("/v1/auctions", json=body | {"starts_at": "2020-01-01T00:00:00"},
                            headers=seller.headers)
    assert bad.status_code == 422
    created = await client.post("/v1/auctions", json=body | {"increments": [[0, 25]]},
                                headers=seller.headers)
    assert created.status_code == 201
    aid = created.json()["id"]
    assert created.json()["increments"] == [[0, 25]]
    r = await client.post(f"/v1/auctions/{aid}/bids", json={"amount": 1_000},
                          headers=buyer.headers)
    assert r.status_code == 422  # neither bid_id nor Idempotency-Key
    r = await client.post(f"/v1/auctions/{aid}/bids",
                          json={"amount": 1_000, "bid_id": str(uuid.uuid4())},
                          headers=seller.headers)
    assert r.status_code == 403
    stranger = await register("seller")  # only its own seller (before a bid) or an admin
    for who in (stranger, buyer):
        r = await client.post(f"/v1/auctions/{aid}/cancel", json={"reason": "x"},
                              headers=who.headers)
        assert r.status_code == 403, r.text
    assert (await client.get(f"/v1/auctions/{uuid.uuid4()}")).status_code == 404
    assert (await client.get("/v1/auctions/not-a-uuid")).status_code == 404
    r = await client.post(f"/v1/auctions/{aid}/bids/1/void", json={"reason": "x"},
                          headers=admin.headers)
    assert r.status_code == 409  # no such bid
    r = await client.post(f"/v1/auctions/{aid}/cancel", json={"reason": "wrong lot"},
                          headers=admin.headers)
    assert r.status_code == 200
    assert (r.json()["state"], r.json()["cancel_reason"]) == ("cancelled", "wrong lot")


async def test_admin_void_over_http(client: httpx.AsyncClient, env: Env,
                                    register: Register) -> None:
    seller, admin = await register("seller"), await register("admin")
    a, b = await register("buyer", name="A"), await register("buyer", name="B")
    for x in (a, b):
        env.funds.credit(uuid.UUID(x.id), 100_000)
    aid = (await _create(client, env, seller))["id"]
    for who, amount in ((a, 3_000), (b, 8_000)):
        r = await client.post(f"/v1/auctions/{aid}/bids",
                              json={"amount": amount, "bid_id": str(uuid.uuid4())},
                              headers=who.headers)
        assert r.status_code == 201
    r = await client.post(f"/v1/auctions/{aid}/bids/2/void", json={"reason": "shill"},
                          headers=admin.headers)
    assert r.status_code == 200, r.text
    assert (r.json()["leader"], r.json()["price"], r.json()["voided_seqs"]) == ("A", 1_000, [2])
    history = (await client.get(f"/v1/auctions/{aid}/bids")).json()["items"]
    assert [(h["seq"], h["voided"]) for h in history] == [(1, False), (2, True)]
    page = (await client.get(f"/v1/auctions/{aid}/bids?after=1&limit=1")).json()
    assert ([h["seq"] for h in page["items"]], page["next_after"]) == ([2], 2)
    bad = await client.get(f"/v1/auctions/{aid}/bids?limit=0")
    assert bad.status_code == 422


async def test_websocket_bid_op(env: Env, register: Register) -> None:
    seller, buyer = await register("seller"), await register("buyer")
    env.funds.credit(uuid.UUID(buyer.id), 100_000)
    aid = (await env.auction(seller)).auction.rules.auction_id
    op = env.svc.bid_op()
    frame = {"id": 7, "op": "bid", "auction_id": str(aid), "amount": 2_500,
             "bid_id": str(uuid.uuid4())}
    result = await op(env.principal(buyer), frame)
    assert (result["accepted"], result["seq"], result["price"]) == (True, 1, 1_000)
    assert isinstance(result["ends_at"], int)
    with pytest.raises(BidTooLow):
        await op(env.principal(buyer), frame | {"bid_id": str(uuid.uuid4()), "amount": 2_500})
    with pytest.raises(Unauthorized):
        await op(None, frame)
    with pytest.raises(ValidationFailed):
        await op(env.principal(buyer), frame | {"amount": "lots"})
    with pytest.raises(ValidationFailed):
        await op(env.principal(buyer), frame | {"extra": 1})


def test_auctions_import_only_core() -> None:
    root = Path(__file__).resolve().parents[2] / "auctions"
    pure = {"model.py", "engine.py", "errors.py", "wire.py"}
    for path in root.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                assert top not in {"api", "realtime", "streaming", "tracking"}, (path, name)
                if path.name in pure:
                    assert top not in {"asyncio", "redis", "asyncpg", "starlette"}, (path, name)
