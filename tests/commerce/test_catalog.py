"""Catalog over HTTP: the contract shape, validation limits, drafts, search and pagination."""

from __future__ import annotations

import httpx

from api.catalog.rules import image_problem
from core.context import Runtime
from tests.commerce.helpers import make_product
from tests.conftest import Register


async def test_create_matches_contract_and_validates(
    client: httpx.AsyncClient, register: Register
) -> None:
    seller, buyer = await register("seller"), await register("buyer")
    r = await client.post("/v1/products", headers=seller.headers, json={
        "title": "Brass lamp", "description": "Old", "currency": "EUR",
        "variants": [{"sku": "L-1", "price": 4_500, "stock": 3},
                     {"sku": "L-2", "price": 5_000, "stock": 0}]})
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) >= {"id", "variants", "title", "currency", "status"}
    assert body["status"] == "published"
    assert body["currency"] == "EUR"
    assert [(v["sku"], v["price"], v["stock"]) for v in body["variants"]] == [
        ("L-1", 4_500, 3), ("L-2", 5_000, 0)]
    assert all({"id", "sku", "price", "stock"} <= set(v) for v in body["variants"])
    assert body["min_price"] == 4_500

    bad = [
        ({"title": "x", "variants": []}, "variants"),
        ({"title": "x", "variants": [{"sku": "a", "price": 0, "stock": 1}]}, "variants.0.price"),
        ({"title": "x", "variants": [{"sku": "a", "price": 1, "stock": -1}]}, "variants.0.stock"),
        ({"title": "x", "variants": [{"sku": "a", "price": 1.5, "stock": 1}]},
         "variants.0.price"),
        ({"title": "x", "variants": [{"sku": "a", "price": 1, "stock": 1}],
          "images": ["http://cdn.example.com/a.jpg"]}, "images.0"),
        ({"title": "x", "variants": [{"sku": "a", "price": 1, "stock": 1}],
          "seller_id": seller.id}, "seller_id"),
        ({"title": "x", "currency": "usd", "variants": [{"sku": "a", "price": 1, "stock": 1}]},
         "currency"),
        ({"title": "  ", "variants": [{"sku": "a", "price": 1, "stock": 1}]}, "title"),
    ]
    for payload, field in bad:
        r = await client.post("/v1/products", json=payload, headers=seller.headers)
        assert r.status_code == 422, (payload, r.text)
        assert field in {e["field"] for e in r.json()["errors"]}, (payload, r.json())
    # A SKU given twice is a conflict, like a SKU another variant holds (409, not a schema
    # error: JSON Schema cannot state uniqueness of one field across items).
    r = await client.post("/v1/products", headers=seller.headers, json={
        "title": "x", "variants": [{"sku": "a", "price": 1, "stock": 1},
                                   {"sku": "a", "price": 1, "stock": 1}]})
    assert r.status_code == 409
    assert r.json()["code"] == "sku_taken"
    r = await client.post("/v1/products", headers=buyer.headers, json={
        "title": "x", "variants": [{"sku": "a", "price": 1, "stock": 1}]})
    assert r.status_code == 403


def test_image_urls() -> None:
    assert image_problem("https://cdn.example.com/p/1.jpg") is None
    for url in ("http://cdn.example.com/a.jpg", "https://127.0.0.1/a.jpg",
                "https://[::1]/a.jpg", "https://localhost/a.jpg", "https://user:pw@ex.com/a",
                "https://intranet/a.jpg", "https://printer.local/a.jpg",
                "https://ex.com/a b.jpg", "javascript:alert(1)"):
        assert image_problem(url) is not None, url


async def test_edit_publish_and_drafts(
    client: httpx.AsyncClient, register: Register, rt: Runtime
) -> None:
    seller, buyer = await register("seller"), await register("buyer")
    product = await make_product(client, seller, status="draft")
    pid = product["id"]
    assert product["status"] == "draft"
    assert (await client.get(f"/v1/products/{pid}")).status_code == 404
    assert (await client.get(f"/v1/products/{pid}", headers=seller.headers)).status_code == 200
    r = await client.post("/v1/cart/items", headers=buyer.headers,
                          json={"variant_id": product["variants"][0]["id"], "quantity": 1})
    assert r.status_code == 404

    r = await client.patch(f"/v1/products/{pid}", headers=seller.headers, json={
        "title": "Renamed", "images": ["https://cdn.example.com/1.jpg"]})
    assert r.status_code == 200, r.text
    assert (r.json()["title"], r.json()["images"]) == ("Renamed", ["https://cdn.example.com/1.jpg"])
    r = await client.patch(f"/v1/products/{pid}", headers=seller.headers,
                           json={"status": "published"})
    assert r.status_code == 422  # status is not on the allow-list: use /publish
    r = await client.patch(f"/v1/products/{pid}", headers=seller.headers,
                           json={"images": ["https://x.example.com/a"] * 11})
    assert r.status_code == 422
    r = await client.post(f"/v1/products/{pid}/publish", headers=seller.headers)
    assert r.json()["status"] == "published"
    assert (await client.get(f"/v1/products/{pid}")).status_code == 200
    public = (await client.get(f"/v1/products/{pid}")).json()
    assert "reserved" not in public["variants"][0]  # counters are the seller's business

    r = await client.post(f"/v1/products/{pid}/variants", headers=seller.headers,
                          json={"sku": "S2", "price": 300, "stock": 4})
    assert r.status_code == 201
    assert len(r.json()["variants"]) == 2
    r = await client.post(f"/v1/products/{pid}/variants", headers=seller.headers,
                          json={"sku": "S2", "price": 300, "stock": 4})
    assert (r.status_code, r.json()["code"]) == (409, "sku_taken")
    vid = product["variants"][0]["id"]
    r = await client.patch(f"/v1/products/{pid}/variants/{vid}", headers=seller.headers,
                           json={"price": 999, "stock": 7})
    v = next(v for v in r.json()["variants"] if v["id"] == vid)
    assert (v["price"], v["stock"], v["on_hand"]) == (999, 7, 7)
    assert r.json()["min_price"] == 300
    r = await client.post(f"/v1/products/{pid}/unpublish", headers=seller.headers)
    assert r.json()["status"] == "draft"
    assert (await client.get(f"/v1/products/{pid}")).status_code == 404


async def test_search_and_cursor_pagination(
    client: httpx.AsyncClient, register: Register
) -> None:
    s1, s2 = await register("seller"), await register("seller")
    await make_product(client, s1, title="Vintage brass lamp", price=5_000)
    await make_product(client, s1, title="Silk scarf", price=1_500)
    await make_product(client, s2, title="Brass tray", price=2_500)
    await make_product(client, s2, title="Hidden brass draft", price=100, status="draft")
    for i in range(5):
        await make_product(client, s2, title=f"Spoon {i}", price=200 + i)

    async def titles(query: str) -> list[str]:
        r = await client.get(f"/v1/products?{query}")
        assert r.status_code == 200, r.text
        return [p["title"] for p in r.json()["items"]]

    assert await titles("q=brass") == ["Brass tray", "Vintage brass lamp"]
    assert await titles(f"q=brass&seller_id={s1.id}") == ["Vintage brass lamp"]
    assert await titles("min_price=1000&max_price=3000") == ["Brass tray", "Silk scarf"]
    assert await titles("q=lamp&currency=EUR") == []

    seen: list[str] = []
    cursor = ""
    for _ in range(10):
        r = await client.get(f"/v1/products?limit=3&cursor={cursor}")
        page = r.json()
        seen += [p["title"] for p in page["items"]]
        if page["next_cursor"] is None:
            break
        cursor = page["next_cursor"]
    assert len(seen) == 8
    assert len(set(seen)) == 8
    assert "Hidden brass draft" not in seen
    for query in ("limit=101", "limit=0", "cursor=garbage!", "min_price=-1", "seller_id=nope",
                  "q=" + "x" * 201):
        r = await client.get(f"/v1/products?{query}")
        assert r.status_code == 422, query
    # an empty price range is no products, not an error
    r = await client.get("/v1/products?min_price=5&max_price=1")
    assert r.status_code == 200
    assert r.json()["items"] == []
    r = await client.get("/v1/products?mine=true")
    assert r.status_code == 401


async def test_demo_seed_is_idempotent(client: httpx.AsyncClient, rt: Runtime) -> None:
    from api import demo
    from api.catalog.seed import DEMO_PRODUCTS

    users = await demo.seed(rt.pool)
    await demo.seed(rt.pool)
    r = await client.get(f"/v1/products?seller_id={users.seller.id}")
    items = r.json()["items"]
    assert sorted(p["title"] for p in items) == sorted(t for t, *_ in DEMO_PRODUCTS)
    assert all(p["status"] == "published" and p["variants"] for p in items)
