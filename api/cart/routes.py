"""HTTP routes for the buyer's cart: /v1/cart."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.cart import rules, schemas, store
from api.catalog import store as catalog_store
from core.auth import Role
from core.context import require, runtime
from core.errors import FieldError, NotFound, ValidationFailed
from core.http import JSONResponse, endpoint, parse_json
from core.ids import parse_uuid


def _view(lines: list[store.CartLine]) -> schemas.CartView:
    items = [
        schemas.CartLineView(
            variant_id=str(ln.variant_id), product_id=str(ln.product_id),
            seller_id=str(ln.seller_id), title=ln.title, sku=ln.sku, price=ln.price,
            currency=ln.currency, quantity=ln.quantity, available=max(0, ln.available),
            line_total=ln.price * ln.quantity,
        )
        for ln in lines
    ]
    return schemas.CartView(items, rules.totals(items))


@endpoint("The buyer's cart", tags=("cart",), responses={200: schemas.CartView}, auth=True,
          roles=("buyer",), errors=(401, 403))
async def get_cart(request: Request) -> Response:
    who = await require(request, Role.BUYER)
    return JSONResponse(_view(await store.lines(runtime(request).pool, who.user_id)))


@endpoint(
    "Add a variant to the cart (adds to the quantity already there, capped at 99)",
    tags=("cart",), body=schemas.AddItemBody, responses={200: schemas.CartView}, auth=True,
    roles=("buyer",), errors=(400, 401, 403, 404, 413, 415, 422),
)
async def add_item(request: Request) -> Response:
    who = await require(request, Role.BUYER)
    body = await parse_json(request, schemas.AddItemBody)
    variant_id = parse_uuid(body.variant_id)
    if variant_id is None:
        raise ValidationFailed([FieldError("variant_id", "must be a UUID")])
    pool = runtime(request).pool
    async with pool.acquire() as conn, conn.transaction():
        variant = await catalog_store.find_variant(conn, variant_id)
        if variant is None or not variant.published:
            raise NotFound("No published product has this variant.")
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"cart:{who.user_id}")
        lines = await store.lines(conn, who.user_id)
        if len(lines) >= rules.MAX_LINES and all(ln.variant_id != variant_id for ln in lines):
            raise ValidationFailed([FieldError("variant_id", f"a cart holds at most "
                                                             f"{rules.MAX_LINES} lines")])
        await store.add(conn, who.user_id, variant_id, body.quantity,
                        max_quantity=schemas.MAX_QUANTITY)
        lines = await store.lines(conn, who.user_id)
    return JSONResponse(_view(lines))


@endpoint("Remove a variant from the cart", tags=("cart",), responses={200: schemas.CartView},
          auth=True, roles=("buyer",), errors=(401, 403, 404))
async def remove_item(request: Request) -> Response:
    who = await require(request, Role.BUYER)
    variant_id = parse_uuid(request.path_params["variant_id"])
    pool = runtime(request).pool
    if variant_id is None or not await store.remove(pool, who.user_id, variant_id):
        raise NotFound()
    return JSONResponse(_view(await store.lines(pool, who.user_id)))


routes = [
    Route("/v1/cart", get_cart, methods=["GET"]),
    Route("/v1/cart/items", add_item, methods=["POST"]),
    Route("/v1/cart/items/{variant_id}", remove_item, methods=["DELETE"]),
]
