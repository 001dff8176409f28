"""Object-level authorization: nobody reads or changes another user's products, carts or
orders. Every id-taking commerce route is tried with an id belonging to someone else, and a
guard checks that no such route escapes this table."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.routing import Route

from core.context import Runtime
from tests.commerce.helpers import add_to_cart, assert_consistent, buy, fund, make_product
from tests.conftest import Register

COMMERCE_PREFIXES = ("/v1/products", "/v1/cart", "/v1/orders", "/v1/admin/orders",
                     "/v1/admin/dead-letters")


def _id_routes(app: Starlette) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for route in app.routes:
        if isinstance(route, Route) and "{" in route.path and route.path.startswith(
                COMMERCE_PREFIXES):
            out |= {(m, route.path) for m in (route.methods or set()) - {"HEAD"}}
    return out


async def test_nobody_touches_anothers_objects(
    app: Starlette, client: httpx.AsyncClient, register: Register, rt: Runtime
) -> None:
    alice_seller, mallory_seller = await register("seller"), await register("seller")
    bob, eve = await register("buyer"), await register("buyer")
    rider, other_rider = await register("rider"), await register("rider")
    await fund(rt, bob.id, 10_000)
    await fund(rt, eve.id, 10_000)
    product = await make_product(client, alice_seller, stock=10)
    draft = await make_product(client, alice_seller, status="draft", skus=("D1",))
    mallory_product = await make_product(client, mallory_seller, skus=("M1",))
    variant = product["variants"][0]["id"]
    order = (await buy(client, bob, variant)).json()["orders"][0]["id"]
    paid = (await buy(client, bob, variant)).json()["orders"][0]["id"]
    assert (await client.post(f"/v1/orders/{paid}/pay", headers=bob.headers)).status_code == 200
    r = await client.post(f"/v1/orders/{paid}/assign-rider", json={"rider_id": rider.id},
                          headers=alice_seller.headers)
    assert r.status_code == 200
    await add_to_cart(client, bob, variant)

    pid, did, mvid = product["id"], draft["id"], mallory_product["variants"][0]["id"]
    json_body: dict[str, Any] = {}
    cases: list[tuple[str, str, str, Any, dict[str, Any] | None, set[int]]] = [
        # (method, template, url, who, body, acceptable statuses)
        ("GET", "/v1/products/{product_id}", f"/v1/products/{did}", mallory_seller, None,
         {404}),
        ("GET", "/v1/products/{product_id}", f"/v1/products/{did}", bob, None, {404}),
        ("PATCH", "/v1/products/{product_id}", f"/v1/products/{pid}", mallory_seller,
         {"title": "mine now"}, {403}),
        ("PATCH", "/v1/products/{product_id}", f"/v1/products/{did}", mallory_seller,
         {"title": "mine now"}, {404}),
        ("PATCH", "/v1/products/{product_id}", f"/v1/products/{pid}", bob,
         {"title": "mine now"}, {403}),
        ("POST", "/v1/products/{product_id}/publish", f"/v1/products/{did}/publish",
         mallory_seller, None, {404}),
        ("POST", "/v1/products/{product_id}/unpublish", f"/v1/products/{pid}/unpublish",
         mallory_seller, None, {403}),
        ("POST", "/v1/products/{product_id}/variants", f"/v1/products/{pid}/variants",
         mallory_seller, {"sku": "X", "price": 1, "stock": 1}, {403}),
        ("PATCH", "/v1/products/{product_id}/variants/{variant_id}",
         f"/v1/products/{pid}/variants/{variant}", mallory_seller, {"stock": 0}, {403}),
        # Alice's product id with Mallory's variant: the variant is not on that product.
        ("PATCH", "/v1/products/{product_id}/variants/{variant_id}",
         f"/v1/products/{pid}/variants/{mvid}", alice_seller, {"stock": 0}, {404}),
        ("DELETE", "/v1/cart/items/{variant_id}", f"/v1/cart/items/{variant}", eve, None,
         {404}),
        ("GET", "/v1/orders/{order_id}", f"/v1/orders/{order}", eve, None, {404}),
        ("GET", "/v1/orders/{order_id}", f"/v1/orders/{order}", mallory_seller, None, {404}),
        ("GET", "/v1/orders/{order_id}", f"/v1/orders/{paid}", other_rider, None, {404}),
        ("POST", "/v1/orders/{order_id}/pay", f"/v1/orders/{order}/pay", eve, json_body,
         {404}),
        ("POST", "/v1/orders/{order_id}/transitions", f"/v1/orders/{paid}/transitions",
         mallory_seller, {"to": "packed"}, {404}),
        ("POST", "/v1/orders/{order_id}/transitions", f"/v1/orders/{paid}/transitions",
         other_rider, {"to": "packed"}, {404}),
        ("POST", "/v1/orders/{order_id}/cancel", f"/v1/orders/{order}/cancel", eve, json_body,
         {404}),
        ("POST", "/v1/orders/{order_id}/cancel", f"/v1/orders/{order}/cancel", mallory_seller,
         json_body, {404}),
        ("POST", "/v1/orders/{order_id}/assign-rider", f"/v1/orders/{paid}/assign-rider",
         mallory_seller, {"rider_id": other_rider.id}, {404}),
        ("POST", "/v1/orders/{order_id}/assign-rider", f"/v1/orders/{paid}/assign-rider",
         bob, {"rider_id": other_rider.id}, {403}),
        # Tracking's order routes (tracking/routes.py).
        ("GET", "/v1/orders/{order_id}/track", f"/v1/orders/{paid}/track", eve, None, {404}),
        ("POST", "/v1/orders/{order_id}/dispatch", f"/v1/orders/{paid}/dispatch",
         mallory_seller, {"pickup": {"lat": 52.5, "lon": 13.4}}, {404}),
        ("POST", "/v1/admin/orders/{order_id}/transition",
         f"/v1/admin/orders/{paid}/transition", alice_seller,
         {"to": "packed", "reason": "x"}, {403}),
        ("POST", "/v1/admin/orders/{order_id}/cancel", f"/v1/admin/orders/{paid}/cancel", bob,
         {"reason": "x"}, {403}),
        ("POST", "/v1/admin/orders/{order_id}/refunds", f"/v1/admin/orders/{paid}/refunds",
         alice_seller, {"amount": 1, "reason": "x"}, {403}),
        ("POST", "/v1/admin/dead-letters/{event_id}/replay", "/v1/admin/dead-letters/1/replay",
         bob, None, {403}),
    ]
    covered = {(m, t) for m, t, *_ in cases}
    assert _id_routes(app) <= covered, _id_routes(app) - covered

    before = await rt.pool.fetch(
        "SELECT id, state, rider_id, updated_at FROM orders ORDER BY id")
    products_before = await rt.pool.fetch("SELECT * FROM products ORDER BY id")
    variants_before = await rt.pool.fetch("SELECT * FROM variants ORDER BY id")
    for method, _, url, who, body, expected in cases:
        r = await client.request(method, url, json=body, headers=who.headers)
        assert r.status_code in expected, (method, url, who.role, r.status_code, r.text)
    # Unauthenticated callers are refused everywhere but public product reads.
    for method, _, url, _, body, _ in cases:
        r = await client.request(method, url, json=body)
        assert r.status_code in (401, 404), (method, url, r.status_code)
    assert await rt.pool.fetch("SELECT id, state, rider_id, updated_at FROM orders ORDER BY id") \
        == before
    assert await rt.pool.fetch("SELECT * FROM products ORDER BY id") == products_before
    assert await rt.pool.fetch("SELECT * FROM variants ORDER BY id") == variants_before
    assert len((await client.get("/v1/cart", headers=bob.headers)).json()["items"]) == 1

    # Listings only ever show the caller's own orders.
    for who, expected_ids in ((eve, set()), (mallory_seller, set()), (other_rider, set()),
                              (bob, {order, paid}), (alice_seller, {order, paid}),
                              (rider, {paid})):
        r = await client.get("/v1/orders", headers=who.headers)
        assert {o["id"] for o in r.json()["items"]} == expected_ids, who.role
    r = await client.get("/v1/products?mine=true", headers=mallory_seller.headers)
    assert {p["id"] for p in r.json()["items"]} == {mallory_product["id"]}
    r = await client.get("/v1/products")
    assert did not in {p["id"] for p in r.json()["items"]}
    # Non-UUID ids are plain 404s, not 500s.
    r = await client.get(f"/v1/orders/{uuid.uuid4()}", headers=bob.headers)
    assert r.status_code == 404
    r = await client.get("/v1/orders/not-a-uuid", headers=bob.headers)
    assert r.status_code == 404
    await assert_consistent(rt.pool)
