"""Admin user search and suspension."""

from __future__ import annotations

import httpx

from tests.api.test_problems import assert_problem
from tests.conftest import Register


async def test_search_and_paginate(client: httpx.AsyncClient, register: Register) -> None:
    admin = await register("admin")
    for _ in range(3):
        await register("seller")
    await register("buyer", name="Zed Unique")
    r = await client.get(
        "/v1/admin/users", params={"role": "seller", "limit": 2}, headers=admin.headers
    )
    assert r.status_code == 200
    page = r.json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    r = await client.get(
        "/v1/admin/users",
        params={"role": "seller", "limit": 2, "cursor": page["next_cursor"]},
        headers=admin.headers,
    )
    rest = r.json()
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None
    assert {u["role"] for u in page["items"] + rest["items"]} == {"seller"}
    r = await client.get("/v1/admin/users", params={"q": "zed uni"}, headers=admin.headers)
    assert [u["display_name"] for u in r.json()["items"]] == ["Zed Unique"]
    r = await client.get("/v1/admin/users", params={"limit": 1000}, headers=admin.headers)
    assert_problem(r, 422, "validation_failed")


async def test_suspension_cuts_tokens_and_logins(
    client: httpx.AsyncClient, register: Register
) -> None:
    admin, buyer = await register("admin"), await register("buyer")
    r = await client.post(
        f"/v1/admin/users/{buyer.id}/suspend",
        headers=admin.headers,
        json={"reason": "fraud review"},
    )
    assert r.status_code == 204
    assert_problem(await client.get("/v1/me", headers=buyer.headers), 401, "token_invalid")
    r = await client.post("/v1/auth/login", json={"email": buyer.email, "password": buyer.password})
    assert_problem(r, 403, "account_suspended")
    r = await client.post("/v1/auth/refresh", json={"refresh_token": buyer.refresh_token})
    assert_problem(r, 401, "token_invalid")
    r = await client.post(
        f"/v1/admin/users/{buyer.id}/reactivate", headers=admin.headers, json={"reason": "cleared"}
    )
    assert r.status_code == 204
    r = await client.post("/v1/auth/login", json={"email": buyer.email, "password": buyer.password})
    assert r.status_code == 200


async def test_suspend_unknown_user(client: httpx.AsyncClient, register: Register) -> None:
    admin = await register("admin")
    r = await client.post(
        "/v1/admin/users/00000000-0000-0000-0000-000000000000/suspend",
        headers=admin.headers,
        json={"reason": "nobody"},
    )
    assert_problem(r, 404, "not_found")
    r = await client.post(
        "/v1/admin/users/not-a-uuid/suspend", headers=admin.headers, json={"reason": "nobody"}
    )
    assert_problem(r, 404, "not_found")
