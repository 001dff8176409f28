"""GET /v1/auctions over the real app (real catalog, shows and auction service)."""

from __future__ import annotations

import httpx

from tests.conftest import Register


async def test_list_by_show_and_state_with_paging(
    client: httpx.AsyncClient, register: Register
) -> None:
    seller = await register("seller")
    product = (await client.post("/v1/products", headers=seller.headers, json={
        "title": "Tea set", "variants": [{"sku": f"T{i}", "price": 2_000, "stock": 1}
                                         for i in range(3)]})).json()
    show = (await client.post("/v1/shows", headers=seller.headers,
                              json={"title": "Tea evening"})).json()
    made = []
    for i, variant in enumerate(product["variants"]):
        r = await client.post("/v1/auctions", headers=seller.headers, json={
            "variant_id": variant["id"], "start_price": 1_000, "duration_s": 600,
            "show_id": show["id"] if i < 2 else None})
        assert r.status_code == 201, r.text
        made.append(r.json()["id"])
    r = await client.get("/v1/auctions", params={"show_id": show["id"]})
    assert r.status_code == 200
    assert [a["id"] for a in r.json()["items"]] == made[1::-1]  # newest first
    assert all(a["show_id"] == show["id"] for a in r.json()["items"])
    first = (await client.get("/v1/auctions", params={"limit": 2, "state": "open"})).json()
    rest = (await client.get("/v1/auctions", params={"limit": 2, "state": "open",
                                                     "cursor": first["next_cursor"]})).json()
    assert [a["id"] for a in first["items"] + rest["items"]] == made[::-1]
    assert rest["next_cursor"] is None
    assert "reserve_price" not in first["items"][0]
    none = await client.get("/v1/auctions", params={"state": "cancelled"})
    assert none.json()["items"] == []
    for bad in ({"state": "sold"}, {"limit": "0"}, {"show_id": "x"}, {"cursor": "nope"}):
        r = await client.get("/v1/auctions", params=bad)
        assert r.status_code == 422, bad
        assert r.json()["code"] == "validation_failed"


async def test_an_auction_goes_only_into_a_show_of_its_seller(
    client: httpx.AsyncClient, register: Register
) -> None:
    seller, other = await register("seller"), await register("seller")
    variant = (await client.post("/v1/products", headers=seller.headers, json={
        "title": "Lamp", "variants": [{"sku": "L1", "price": 2_000, "stock": 1}]},
    )).json()["variants"][0]["id"]
    theirs = (await client.post("/v1/shows", headers=other.headers,
                                json={"title": "Someone else's evening"})).json()["id"]
    for show_id in (theirs, "00000000-0000-4000-8000-000000000000"):
        r = await client.post("/v1/auctions", headers=seller.headers, json={
            "variant_id": variant, "start_price": 1_000, "duration_s": 600,
            "show_id": show_id})
        assert r.status_code == 422, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert [e["field"] for e in r.json()["errors"]] == ["show_id"]
