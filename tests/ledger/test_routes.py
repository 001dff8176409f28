"""Ledger HTTP API: top-ups with Idempotency-Key, wallet, statement pagination, payouts,
payout details (encrypted, masked), admin adjustments and the ledger check, and object-level
authorisation between users."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.ledger import service as ledger
from core.config import Settings
from core.context import Runtime
from tests.conftest import Register
from tests.support.lifespan import started

DETAILS = {
    "account_holder": "Layla Haddad",
    "bank_name": "Bank of Souk",
    "account_number": "DE89 3704 0044 0532 0130 00",
    "routing_code": "COBADEFFXXX",
}


async def _topup(client: httpx.AsyncClient, headers: dict[str, str], amount: int,
                 key: str | None = None, **extra: Any) -> httpx.Response:
    h = dict(headers)
    if key is not None:
        h["Idempotency-Key"] = key
    return await client.post("/v1/wallet/topups", json={"amount": amount, **extra}, headers=h)


async def test_topup_is_idempotent_and_credits_the_wallet(
    client: httpx.AsyncClient, register: Register, rt: Runtime
) -> None:
    buyer = await register("buyer")
    first = await _topup(client, buyer.headers, 2_500, key="topup-1")
    assert first.status_code == 201, first.text
    assert first.json()["wallet"] == {"currency": "USD", "available": 2_500, "held": 0}
    again = await _topup(client, buyer.headers, 2_500, key="topup-1")
    assert again.status_code == 201
    assert again.json() == first.json()
    reused = await _topup(client, buyer.headers, 2_600, key="topup-1")
    assert reused.status_code == 409
    assert reused.json()["code"] == "idempotency_key_reused"
    # The ledger transfer id is derived from the key: even after the key store forgot the
    # request (pruned after 24 h), a retry cannot credit twice.
    await rt.pool.execute("DELETE FROM idempotency_keys")
    late = await _topup(client, buyer.headers, 2_500, key="topup-1")
    assert late.status_code == 201
    assert late.json()["transfer"]["id"] == first.json()["transfer"]["id"]
    assert late.json()["wallet"]["available"] == 2_500
    assert (await _topup(client, buyer.headers, 100)).status_code == 201  # key is optional
    wallet = await client.get("/v1/wallet", headers=buyer.headers)
    assert wallet.json() == {"currency": "USD", "available": 2_600, "held": 0}
    eur = await _topup(client, buyer.headers, 7, currency="EUR")
    assert eur.json()["wallet"]["currency"] == "EUR"
    wallet_eur = await client.get("/v1/wallet?currency=EUR", headers=buyer.headers)
    assert wallet_eur.json()["available"] == 7


@pytest.mark.parametrize(
    "body",
    [{"amount": 0}, {"amount": -1}, {"amount": 1.5}, {"amount": "10"}, {"amount": 10,
     "currency": "usd"}, {"amount": 10, "extra": 1}, {"amount": 10**15}, {"amount": 10_000_001}],
)
async def test_topup_validation(
    client: httpx.AsyncClient, register: Register, body: dict[str, Any]
) -> None:
    buyer = await register("buyer")
    r = await client.post("/v1/wallet/topups", json=body, headers=buyer.headers)
    assert r.status_code == 422
    assert r.json()["code"] == "validation_failed"


@pytest.fixture
async def no_provider_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(replace(settings, payment_provider="none"))
    async with started(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://souk.test") as c:
            yield c


async def test_topup_without_payment_provider_is_a_clear_503(
    no_provider_client: httpx.AsyncClient,
) -> None:
    client = no_provider_client
    r = await client.post("/v1/auth/register", json={
        "email": f"np{uuid.uuid4().hex[:8]}@example.com", "password": "correct horse battery",
        "display_name": "No Provider", "role": "buyer"})
    headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
    r = await _topup(client, headers, 100, key="k")
    assert r.status_code == 503
    assert r.json()["code"] == "payment_provider_unavailable"
    assert (await client.get("/v1/wallet", headers=headers)).json()["available"] == 0


async def test_statement_pages_with_running_balance(
    client: httpx.AsyncClient, register: Register
) -> None:
    buyer = await register("buyer")
    for amount in (100, 200, 300, 400, 500):
        assert (await _topup(client, buyer.headers, amount)).status_code == 201
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        url = "/v1/wallet/statement?limit=2" + (f"&cursor={cursor}" if cursor else "")
        r = await client.get(url, headers=buyer.headers)
        assert r.status_code == 200, r.text
        body = r.json()
        seen.extend(body["entries"])
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert [e["amount"] for e in seen] == [500, 400, 300, 200, 100]
    assert [e["balance_after"] for e in seen] == [1500, 1000, 600, 300, 100]
    assert {e["kind"] for e in seen} == {"topup"}
    for bad in ("limit=0", "limit=101", "limit=x", "cursor=-1", "currency=us"):
        r = await client.get(f"/v1/wallet/statement?{bad}", headers=buyer.headers)
        assert r.status_code == 422, bad


async def test_users_cannot_see_each_others_money_or_bank_details(
    client: httpx.AsyncClient, register: Register, rt: Runtime
) -> None:
    alice, bob = await register("buyer"), await register("buyer")
    seller_a, seller_b = await register("seller"), await register("seller")
    await _topup(client, alice.headers, 900)
    await _topup(client, alice.headers, 100)
    alice_page = (await client.get("/v1/wallet/statement?limit=1", headers=alice.headers)).json()
    assert alice_page["next_cursor"] is not None
    # Bob sees his own (empty) wallet, also when replaying Alice's cursor.
    assert (await client.get("/v1/wallet", headers=bob.headers)).json()["available"] == 0
    page = await client.get(
        f"/v1/wallet/statement?cursor={alice_page['next_cursor']}", headers=bob.headers
    )
    assert page.json()["entries"] == []
    # Bank details belong to their seller only; buyers have none to read.
    assert (await client.put("/v1/seller/payout-details", json=DETAILS,
                             headers=seller_a.headers)).status_code == 200
    assert (await client.get("/v1/seller/payout-details",
                             headers=seller_b.headers)).status_code == 404
    for who in (alice, bob):
        for method, path in (("GET", "/v1/seller/payout-details"),
                             ("PUT", "/v1/seller/payout-details"),
                             ("POST", "/v1/seller/payouts"), ("GET", "/v1/seller/balance")):
            r = await client.request(method, path, json=DETAILS if method == "PUT" else
                                     {"amount": 1}, headers=who.headers)
            assert r.status_code == 403, (method, path)
    # Only admins adjust wallets or read the ledger check; nobody without a token.
    for who in (alice, seller_a):
        r = await client.post(f"/v1/admin/wallets/{who.id}/adjustments",
                              json={"amount": 1_000_000, "reason": "gift"}, headers=who.headers)
        assert r.status_code == 403
        assert (await client.get("/v1/admin/ledger/check", headers=who.headers)).status_code == 403
    for path in ("/v1/wallet", "/v1/wallet/statement", "/v1/seller/balance"):
        assert (await client.get(path)).status_code == 401
    assert (await ledger.wallet(rt.pool, uuid.UUID(alice.id), "USD")).available == 1_000


async def test_payout_details_are_encrypted_at_rest_masked_and_never_logged(
    client: httpx.AsyncClient, register: Register, rt: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    seller = await register("seller")
    assert (await client.get("/v1/seller/payout-details",
                             headers=seller.headers)).status_code == 404
    with caplog.at_level(logging.DEBUG):
        r = await client.put("/v1/seller/payout-details", json=DETAILS, headers=seller.headers)
    assert r.status_code == 200, r.text
    shown = r.json()
    assert shown["account_number"].endswith("3000")
    assert "DE89370400440532013000" not in r.text
    assert shown["routing_code"] == "COBA•••••••"
    assert "DE89370400440532013000" not in caplog.text
    assert "0532" not in caplog.text
    got = await client.get("/v1/seller/payout-details", headers=seller.headers)
    assert got.json()["account_number"] == shown["account_number"]
    row = await rt.pool.fetchrow("SELECT * FROM seller_payout_details WHERE seller_id = $1",
                                 uuid.UUID(seller.id))
    assert row["kid"] == "k1"
    assert b"DE89" not in bytes(row["ciphertext"])
    assert b"Layla" not in bytes(row["ciphertext"])
    # A row copied onto another seller does not decrypt (bound by associated data).
    other = await register("seller")
    await rt.pool.execute(
        "INSERT INTO seller_payout_details (seller_id, kid, nonce, ciphertext) "
        "SELECT $2, kid, nonce, ciphertext FROM seller_payout_details WHERE seller_id = $1",
        uuid.UUID(seller.id), uuid.UUID(other.id))
    stolen = await client.get("/v1/seller/payout-details", headers=other.headers)
    assert stolen.status_code == 500
    assert stolen.json()["code"] == "payout_details_unreadable"
    assert "3000" not in stolen.text
    bad = await client.put("/v1/seller/payout-details",
                           json={**DETAILS, "account_number": "12!"}, headers=seller.headers)
    assert bad.status_code == 422


async def test_payout_details_key_rotation(
    client: httpx.AsyncClient, register: Register, rt: Runtime, settings: Settings
) -> None:
    from api.ledger import payout_details
    from api.ledger.crypto import KeyBox

    seller = await register("seller")
    await client.put("/v1/seller/payout-details", json=DETAILS, headers=seller.headers)
    rotated = KeyBox.from_config(settings.encryption_keys, "k2")
    assert rotated is not None
    async with rt.pool.acquire() as conn, conn.transaction():
        assert await payout_details.rotate_all(conn, rotated) >= 1
    assert await rt.pool.fetchval(
        "SELECT kid FROM seller_payout_details WHERE seller_id = $1", uuid.UUID(seller.id)
    ) == "k2"
    only_k2 = KeyBox.from_config({"k2": settings.encryption_keys["k2"]}, None)
    assert only_k2 is not None
    loaded = await payout_details.load(rt.pool, only_k2, uuid.UUID(seller.id))
    assert loaded is not None
    assert loaded[0].account_number == "DE89370400440532013000"


async def test_seller_payouts(client: httpx.AsyncClient, register: Register, rt: Runtime) -> None:
    seller, buyer = await register("seller"), await register("buyer")
    r = await client.post("/v1/seller/payouts", json={"amount": 100},
                          headers={**seller.headers, "Idempotency-Key": "p1"})
    assert r.status_code == 409
    assert r.json()["code"] == "payout_details_missing"
    await client.put("/v1/seller/payout-details", json=DETAILS, headers=seller.headers)
    r = await client.post("/v1/seller/payouts", json={"amount": 100},
                          headers={**seller.headers, "Idempotency-Key": "p1"})
    assert r.status_code == 402
    assert r.json()["code"] == "insufficient_funds"
    order = uuid.uuid4()
    async with rt.pool.acquire() as conn, conn.transaction():
        await ledger.topup(conn, user_id=uuid.UUID(buyer.id), amount=10_000, currency="USD",
                           transfer_id=uuid.uuid4())
        await ledger.hold_for_order(conn, buyer_id=uuid.UUID(buyer.id), order_id=order,
                                    amount=10_000, currency="USD", transfer_id=uuid.uuid4())
        await ledger.capture_hold(conn, order_id=order, transfer_id=uuid.uuid4())
        await ledger.settle_order(conn, order_id=order, seller_id=uuid.UUID(seller.id),
                                  transfer_id=uuid.uuid4(),
                                  fee_bps=rt.settings.platform_fee_bps)
    balance = (await client.get("/v1/seller/balance", headers=seller.headers)).json()
    assert balance == {"currency": "USD", "payable": 10_000 - 800}
    for _ in range(2):
        r = await client.post("/v1/seller/payouts", json={"amount": 9_000},
                              headers={**seller.headers, "Idempotency-Key": "p2"})
        assert r.status_code == 201
        assert r.json()["balance"]["payable"] == 200
    r = await client.post("/v1/seller/payouts", json={"amount": 201},
                          headers={**seller.headers, "Idempotency-Key": "p3"})
    assert r.status_code == 402


async def test_admin_adjustments_and_ledger_check(
    client: httpx.AsyncClient, register: Register
) -> None:
    admin, buyer = await register("admin"), await register("buyer")
    url = f"/v1/admin/wallets/{buyer.id}/adjustments"
    h = {**admin.headers, "Idempotency-Key": "adj-1"}
    first = await client.post(url, json={"amount": 1_234, "reason": "goodwill"}, headers=h)
    assert first.status_code == 201, first.text
    again = await client.post(url, json={"amount": 1_234, "reason": "goodwill"}, headers=h)
    assert again.json() == first.json()
    assert first.json()["wallet"]["available"] == 1_234
    over = await client.post(url, json={"amount": -1_235, "reason": "claw back"},
                             headers={**admin.headers, "Idempotency-Key": "adj-2"})
    assert over.status_code == 402
    for bad_url in (f"/v1/admin/wallets/{uuid.uuid4()}/adjustments",
                    "/v1/admin/wallets/not-a-uuid/adjustments"):
        r = await client.post(bad_url, json={"amount": 1, "reason": "x"}, headers=admin.headers)
        assert r.status_code == 404
    zero = await client.post(url, json={"amount": 0, "reason": "x"}, headers=admin.headers)
    assert zero.status_code == 422
    check = await client.get("/v1/admin/ledger/check", headers=admin.headers)
    assert check.status_code == 200
    report = check.json()
    assert report["ok"] is True
    assert report["transfers"] == 1
    assert report["balance_mismatches"] == []


async def test_routes_are_documented(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    for path in ("/v1/wallet", "/v1/wallet/topups", "/v1/wallet/statement",
                 "/v1/seller/payout-details", "/v1/seller/payouts", "/v1/seller/balance",
                 "/v1/admin/wallets/{user_id}/adjustments", "/v1/admin/ledger/check"):
        assert path in doc["paths"], path
    assert set(doc["paths"]["/v1/seller/payout-details"]) >= {"get", "put"}


async def test_payout_listing_and_admin_resolution(
    client: httpx.AsyncClient, register: Register, rt: Runtime
) -> None:
    seller, other, admin = await register("seller"), await register("seller"), await register(
        "admin")
    await client.put("/v1/seller/payout-details", json=DETAILS, headers=seller.headers)
    async with rt.pool.acquire() as conn, conn.transaction():
        # Give the seller a payable through a settled order.
        buyer, order = uuid.uuid4(), uuid.uuid4()
        await ledger.topup(conn, user_id=buyer, amount=5_000, currency="USD",
                           transfer_id=uuid.uuid4())
        await ledger.hold_for_order(conn, buyer_id=buyer, order_id=order, amount=5_000,
                                    currency="USD", transfer_id=uuid.uuid4())
        await ledger.capture_hold(conn, order_id=order, transfer_id=uuid.uuid4())
        await ledger.settle_order(conn, order_id=order, seller_id=uuid.UUID(seller.id),
                                  transfer_id=uuid.uuid4(), fee_bps=0)
    ids = []
    for n in range(2):
        r = await client.post("/v1/seller/payouts", json={"amount": 2_000},
                              headers={**seller.headers, "Idempotency-Key": f"po{n}"})
        assert r.status_code == 201
        ids.append(r.json()["transfer"]["id"])
    listed = (await client.get("/v1/seller/payouts", headers=seller.headers)).json()["payouts"]
    assert sorted(p["id"] for p in listed) == sorted(ids)
    assert {p["state"] for p in listed} == {"requested"}
    assert (await client.get("/v1/seller/payouts", headers=other.headers)).json() == {
        "payouts": []}
    for path in (f"/v1/admin/payouts/{ids[0]}/complete", f"/v1/admin/payouts/{ids[1]}/fail"):
        r = await client.post(path, json={"reason": "x"}, headers=seller.headers)
        assert r.status_code == 403
    done = await client.post(f"/v1/admin/payouts/{ids[0]}/complete", headers=admin.headers)
    assert done.json() == {"id": ids[0], "state": "paid"}
    assert (await client.post(f"/v1/admin/payouts/{ids[0]}/complete",
                              headers=admin.headers)).status_code == 200  # already paid
    h = {**admin.headers, "Idempotency-Key": "fail-1"}
    failed = await client.post(f"/v1/admin/payouts/{ids[1]}/fail",
                               json={"reason": "IBAN closed"}, headers=h)
    assert failed.status_code == 200, failed.text
    assert failed.json()["reversal"]["amount"] == 2_000
    late = await client.post(f"/v1/admin/payouts/{ids[0]}/fail", json={"reason": "x"},
                             headers=admin.headers)
    assert late.status_code == 409
    assert late.json()["code"] == "payout_not_pending"
    again = await client.post(f"/v1/admin/payouts/{ids[1]}/complete", headers=admin.headers)
    assert again.status_code == 409
    for path in (f"/v1/admin/payouts/{uuid.uuid4()}/complete", "/v1/admin/payouts/x/complete"):
        assert (await client.post(path, headers=admin.headers)).status_code == 404
    balance = (await client.get("/v1/seller/balance", headers=seller.headers)).json()
    assert balance["payable"] == 5_000 - 2_000
    states = {p["id"]: p["state"] for p in
              (await client.get("/v1/seller/payouts", headers=seller.headers)).json()["payouts"]}
    assert states == {ids[0]: "paid", ids[1]: "failed"}


async def test_concurrent_topups_with_one_key_credit_once(
    client: httpx.AsyncClient, register: Register
) -> None:
    buyer = await register("buyer")
    responses = await asyncio.gather(*(
        _topup(client, buyer.headers, 1_000, key="storm") for _ in range(10)
    ))
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["transfer"]["id"] for r in responses}) == 1
    wallet = (await client.get("/v1/wallet", headers=buyer.headers)).json()
    assert wallet["available"] == 1_000
