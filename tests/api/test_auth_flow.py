"""Accounts over HTTP against real PostgreSQL and Redis."""

from __future__ import annotations

import httpx

from core.context import Runtime
from tests.conftest import Register

ACCOUNT_LOCKED = "Too many failed logins for this account."


async def test_register_login_me(client: httpx.AsyncClient, register: Register) -> None:
    seller = await register("seller", name="Layla")
    r = await client.get("/v1/me", headers=seller.headers)
    assert r.status_code == 200
    assert r.json()["role"] == "seller"
    assert r.json()["display_name"] == "Layla"
    r = await client.post(
        "/v1/auth/login", json={"email": seller.email.upper(), "password": seller.password}
    )
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer"


async def test_register_refuses_admin_role_and_duplicates(
    client: httpx.AsyncClient, register: Register
) -> None:
    r = await client.post(
        "/v1/auth/register",
        json={
            "email": "boss@example.com",
            "password": "correct horse battery",
            "display_name": "B",
            "role": "admin",
        },
    )
    assert r.status_code == 422
    # the schema itself states the roles (an enum in /openapi.json)
    assert r.json()["errors"] == [{"field": "role", "message": "Invalid enum value 'admin'"}]
    buyer = await register("buyer")
    r = await client.post(
        "/v1/auth/register",
        json={"email": buyer.email, "password": "correct horse battery", "display_name": "B"},
    )
    assert r.status_code == 409
    assert r.json()["code"] == "email_taken"


async def test_weak_password_and_bad_email(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/auth/register",
        json={"email": "not-an-email", "password": "short", "display_name": "X"},
    )
    assert r.status_code == 422
    fields = {e["field"] for e in r.json()["errors"]}
    assert fields == {"email", "password"}


async def test_wrong_password_is_invalid_credentials(
    client: httpx.AsyncClient, register: Register
) -> None:
    buyer = await register()
    for email in (buyer.email, "nobody@example.com"):
        r = await client.post("/v1/auth/login", json={"email": email, "password": "wrong-password"})
        assert r.status_code == 401
        assert r.json()["code"] == "invalid_credentials"
        assert r.headers["www-authenticate"].startswith("Bearer")


async def test_refresh_rotates_and_reuse_revokes_family(
    client: httpx.AsyncClient, register: Register
) -> None:
    buyer = await register()
    first = buyer.refresh_token
    r = await client.post("/v1/auth/refresh", json={"refresh_token": first})
    assert r.status_code == 200
    second = r.json()["refresh_token"]
    assert second != first
    r = await client.post("/v1/auth/refresh", json={"refresh_token": second})
    assert r.status_code == 200
    third = r.json()["refresh_token"]
    # Presenting the already-used first token again: reuse → the whole family dies.
    r = await client.post("/v1/auth/refresh", json={"refresh_token": first})
    assert r.status_code == 401
    assert r.json()["code"] == "refresh_token_reused"
    r = await client.post("/v1/auth/refresh", json={"refresh_token": third})
    assert r.status_code == 401
    assert r.json()["code"] == "token_invalid"
    # A separate login (another family) is unaffected.
    r = await client.post("/v1/auth/login", json={"email": buyer.email, "password": buyer.password})
    other = r.json()["refresh_token"]
    assert (await client.post("/v1/auth/refresh", json={"refresh_token": other})).status_code == 200


async def test_unknown_refresh_token(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/auth/refresh", json={"refresh_token": "x" * 43})
    assert r.status_code == 401
    assert r.json()["code"] == "token_invalid"


async def test_logout_revokes_access_and_refresh(
    client: httpx.AsyncClient, register: Register
) -> None:
    buyer = await register()
    r = await client.post(
        "/v1/auth/logout", headers=buyer.headers, json={"refresh_token": buyer.refresh_token}
    )
    assert r.status_code == 204
    r = await client.get("/v1/me", headers=buyer.headers)
    assert r.status_code == 401
    assert r.json()["code"] == "token_invalid"
    r = await client.post("/v1/auth/refresh", json={"refresh_token": buyer.refresh_token})
    assert r.status_code == 401


async def test_logout_refuses_someone_elses_refresh_token(
    client: httpx.AsyncClient, register: Register
) -> None:
    a, b = await register(), await register()
    r = await client.post(
        "/v1/auth/logout", headers=a.headers, json={"refresh_token": b.refresh_token}
    )
    assert r.status_code == 422
    assert r.json()["code"] == "validation_failed"
    assert r.json()["errors"][0]["field"] == "refresh_token"
    r = await client.post("/v1/auth/refresh", json={"refresh_token": b.refresh_token})
    assert r.status_code == 200  # b's session was not ended: its token still refreshes
    assert r.json()["access_token"] and r.json()["refresh_token"] != b.refresh_token


async def test_login_lockout_per_account(
    client: httpx.AsyncClient, register: Register, rt: Runtime
) -> None:
    buyer = await register()
    limit = rt.settings.login_failures_per_address  # this account from this address
    for _ in range(limit):
        r = await client.post(
            "/v1/auth/login", json={"email": buyer.email, "password": "nope-nope"}
        )
        assert r.status_code == 401
    r = await client.post("/v1/auth/login", json={"email": buyer.email, "password": buyer.password})
    assert r.status_code == 429
    assert r.json()["code"] == "rate_limited"
    assert r.json()["detail"] == ACCOUNT_LOCKED  # this account's failures, not the address's rate
    assert int(r.headers["retry-after"]) >= 1
    # Other accounts are not locked out, from this same address either.
    other = await register()
    r = await client.post("/v1/auth/login", json={"email": other.email, "password": other.password})
    assert r.status_code == 200


async def test_successful_logins_do_not_drain_account_bucket(
    client: httpx.AsyncClient, register: Register, rt: Runtime
) -> None:
    buyer = await register()
    limit = rt.settings.login_failures_per_address  # this (account, address)'s failures
    for _ in range(limit + 2):
        r = await client.post(
            "/v1/auth/login", json={"email": buyer.email, "password": buyer.password}
        )
        assert r.status_code == 200
        assert r.json()["access_token"]  # each one really signed in
    # The account's bucket is still full: it takes `limit` failures, as on a fresh account,
    # before the account is locked out (the address's own bucket is larger).
    assert limit + 2 + limit + 1 <= rt.settings.login_rate_per_address
    for _ in range(limit):
        r = await client.post("/v1/auth/login", json={"email": buyer.email, "password": "nope-nope"})
        assert r.status_code == 401
        assert r.json()["code"] == "invalid_credentials"  # counted, not refused
    r = await client.post("/v1/auth/login", json={"email": buyer.email, "password": buyer.password})
    assert r.status_code == 429
    assert r.json()["code"] == "rate_limited"
    assert r.json()["detail"] == ACCOUNT_LOCKED  # the account's bucket, exactly full before
