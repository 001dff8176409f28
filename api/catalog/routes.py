"""HTTP routes for the catalog: /v1/products.

Sellers create and edit their own products; anyone may browse published ones. A draft is
visible to its seller (and admins) only; to everybody else it does not exist (404).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import ClassVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.catalog import rules, schemas, store
from api.paging import decode_cursor, encode_cursor, parse_limit
from core.auth import Principal, Role
from core.context import authenticate, require, runtime
from core.errors import Conflict, FieldError, Forbidden, NotFound, ValidationFailed
from core.http import JSONResponse, endpoint, parse_json
from core.ids import parse_uuid


class SkuTaken(Conflict):
    code = "sku_taken"
    titles: ClassVar[Mapping[str, str]] = {"en": "SKU already used", "ar": "رمز SKU مستخدم"}
    details: ClassVar[Mapping[str, str]] = {
        "en": "Another variant of this product has this SKU.",
        "ar": "يوجد متغير آخر لهذا المنتج بنفس رمز SKU.",
    }


def _iso(value: object) -> str:
    text: str = value.isoformat()  # type: ignore[attr-defined]
    return text.replace("+00:00", "Z")


def product_view(p: store.Product, *, owner_view: bool) -> schemas.ProductView:
    variants = [
        schemas.VariantView(
            id=str(v.id), sku=v.sku, price=v.price, stock=v.available,
            on_hand=v.on_hand if owner_view else None,
            reserved=v.reserved if owner_view else None,
            sold=v.sold if owner_view else None,
        )
        for v in p.variants
    ]
    return schemas.ProductView(
        id=str(p.id), seller_id=str(p.seller_id), title=p.title, description=p.description,
        currency=p.currency, status=p.status, images=p.images, min_price=p.min_price,
        variants=variants, created_at=_iso(p.created_at), updated_at=_iso(p.updated_at),
    )


async def optional_principal(request: Request) -> Principal | None:
    """The caller when a token is sent (a bad token is still refused), else None."""
    if request.headers.get("authorization") is None:
        return None
    return await authenticate(request)


def path_id(request: Request, name: str) -> uuid.UUID:
    value = parse_uuid(request.path_params[name])
    if value is None:
        raise NotFound()
    return value


def _is_owner(p: store.Product, who: Principal | None) -> bool:
    return who is not None and who.user_id == p.seller_id


def _can_see(p: store.Product, who: Principal | None) -> bool:
    return p.status == "published" or _is_owner(p, who) or (
        who is not None and who.role is Role.ADMIN
    )


async def _own_product(request: Request) -> tuple[Principal, store.Product]:
    """The path's product when the caller is its seller: 404 if they cannot see it, 403 if they
    can but do not own it."""
    who = await require(request, Role.SELLER)
    product = await store.get_product(runtime(request).pool, path_id(request, "product_id"))
    if product is None or not _can_see(product, who):
        raise NotFound()
    if not _is_owner(product, who):
        raise Forbidden()
    return who, product


async def _reply(request: Request, product_id: uuid.UUID, status: int = 200) -> Response:
    product = await store.get_product(runtime(request).pool, product_id)
    if product is None:
        raise NotFound()
    return JSONResponse(product_view(product, owner_view=True), status_code=status)


@endpoint(
    "Create a product with its variants (sellers). Published at once unless status is draft.",
    tags=("catalog",), body=schemas.CreateProductBody, responses={201: schemas.ProductView},
    auth=True, roles=("seller",), errors=(400, 401, 403, 409, 413, 415, 422),
)
async def create_product(request: Request) -> Response:
    rt = runtime(request)
    who = await require(request, Role.SELLER)
    body = await parse_json(request, schemas.CreateProductBody)
    rules.check_create(body)
    if rules.has_duplicate_sku(body):
        raise SkuTaken()
    async with rt.pool.acquire() as conn, conn.transaction():
        product = await store.create_product(
            conn, seller_id=who.user_id, title=body.title, description=body.description,
            currency=body.currency or rt.settings.default_currency, status=body.status,
            images=body.images, variants=[(v.sku, v.price, v.stock) for v in body.variants],
        )
    return JSONResponse(product_view(product, owner_view=True), status_code=201)


@endpoint(
    "Browse and search published products (newest first); sellers add mine=true for their "
    "own, drafts included",
    tags=("catalog",), responses={200: schemas.ProductPage}, errors=(401, 403, 422),
    query={"q": "text search", "seller_id": "only this seller", "min_price": "cents",
           "max_price": "cents", "currency": "ISO 4217", "mine": "true: my products (sellers)",
           "limit": "1..100 (default 20)", "cursor": "next_cursor of the previous page"},
)
async def list_products(request: Request) -> Response:
    rt = runtime(request)
    q = request.query_params
    owner: uuid.UUID | None = None
    if q.get("mine") in ("1", "true"):
        owner = (await require(request, Role.SELLER)).user_id
    seller: uuid.UUID | None = None
    if q.get("seller_id"):
        seller = parse_uuid(q["seller_id"])
        if seller is None:
            raise ValidationFailed([FieldError("seller_id", "must be a UUID")])
    currency = q.get("currency")
    if currency is not None and not re.fullmatch(r"[A-Z]{3}", currency):
        raise ValidationFailed([FieldError("currency", "must be an ISO 4217 code")])
    low = rules.parse_money_query(q.get("min_price"), "min_price")
    high = rules.parse_money_query(q.get("max_price"), "max_price")
    # min_price above max_price is an empty range: no products (not an error)
    limit = parse_limit(q.get("limit"))
    search = store.Search(
        text=rules.parse_search(q.get("q")), seller_id=seller, min_price=low, max_price=high,
        currency=currency, owner_id=owner,
    )
    products = await store.search_products(
        rt.pool, search, after=decode_cursor(q.get("cursor")), limit=limit + 1
    )
    more = len(products) > limit
    products = products[:limit]
    cursor = encode_cursor(products[-1].created_at, products[-1].id) if more else None
    page = schemas.ProductPage(
        [product_view(p, owner_view=owner is not None) for p in products], cursor
    )
    return JSONResponse(page)


@endpoint(
    "One product. Drafts are visible to their seller only.",
    tags=("catalog",), responses={200: schemas.ProductView}, errors=(401, 404),
)
async def get_product(request: Request) -> Response:
    who = await optional_principal(request)
    product = await store.get_product(runtime(request).pool, path_id(request, "product_id"))
    if product is None or not _can_see(product, who):
        raise NotFound()
    owner_view = _is_owner(product, who) or (who is not None and who.role is Role.ADMIN)
    return JSONResponse(product_view(product, owner_view=owner_view))


@endpoint(
    "Edit a product's title, description or images (its seller only)",
    tags=("catalog",), body=schemas.PatchProductBody, responses={200: schemas.ProductView},
    auth=True, roles=("seller",), errors=(400, 401, 403, 404, 415, 422),
)
async def patch_product(request: Request) -> Response:
    who, product = await _own_product(request)
    body = await parse_json(request, schemas.PatchProductBody)
    rules.check_patch(body)
    changes = {
        k: (v.strip() if k == "title" and isinstance(v, str) else v)
        for k, v in msgspec.structs.asdict(body).items()
        if v is not msgspec.UNSET
    }
    await store.update_product(runtime(request).pool, product.id, who.user_id, changes)
    return await _reply(request, product.id)


def _status_setter(status: str, summary: str) -> object:
    @endpoint(summary, tags=("catalog",), responses={200: schemas.ProductView}, auth=True,
              roles=("seller",), errors=(401, 403, 404))
    async def handler(request: Request) -> Response:
        who, product = await _own_product(request)
        await store.update_product(
            runtime(request).pool, product.id, who.user_id, {"status": status}
        )
        return await _reply(request, product.id)

    return handler


@endpoint(
    "Add a variant to a product (its seller only)",
    tags=("catalog",), body=schemas.VariantIn, responses={201: schemas.ProductView}, auth=True,
    roles=("seller",), errors=(400, 401, 403, 404, 409, 415, 422),
)
async def add_variant(request: Request) -> Response:
    _, product = await _own_product(request)
    body = await parse_json(request, schemas.VariantIn)
    if len(product.variants) >= schemas.MAX_VARIANTS:
        raise ValidationFailed([FieldError("variants", f"at most {schemas.MAX_VARIANTS}")])
    async with runtime(request).pool.acquire() as conn, conn.transaction():
        try:
            await store.add_variant(conn, product.id, body.sku, body.price, body.stock)
        except store.DuplicateSku:
            raise SkuTaken() from None
    return await _reply(request, product.id, 201)


@endpoint(
    "Change a variant's SKU, price or units available for sale (its seller only)",
    tags=("catalog",), body=schemas.PatchVariantBody, responses={200: schemas.ProductView},
    auth=True, roles=("seller",), errors=(400, 401, 403, 404, 409, 415, 422),
)
async def patch_variant(request: Request) -> Response:
    _, product = await _own_product(request)
    variant_id = path_id(request, "variant_id")
    body = await parse_json(request, schemas.PatchVariantBody)

    def given(value: object) -> int | str | None:
        return None if value is msgspec.UNSET else value  # type: ignore[return-value]

    async with runtime(request).pool.acquire() as conn, conn.transaction():
        try:
            found = await store.update_variant(
                conn, product.id, variant_id, sku=given(body.sku),  # type: ignore[arg-type]
                price=given(body.price), stock=given(body.stock),  # type: ignore[arg-type]
            )
        except store.DuplicateSku:
            raise SkuTaken() from None
    if not found:
        raise NotFound()
    return await _reply(request, product.id)


routes = [
    Route("/v1/products", create_product, methods=["POST"]),
    Route("/v1/products", list_products, methods=["GET"]),
    Route("/v1/products/{product_id}", get_product, methods=["GET"]),
    Route("/v1/products/{product_id}", patch_product, methods=["PATCH"]),
    Route("/v1/products/{product_id}/publish",
          _status_setter("published", "Publish a product (its seller only)"),  # type: ignore[arg-type]
          methods=["POST"]),
    Route("/v1/products/{product_id}/unpublish",
          _status_setter("draft", "Unpublish a product back to draft (its seller only)"),  # type: ignore[arg-type]
          methods=["POST"]),
    Route("/v1/products/{product_id}/variants", add_variant, methods=["POST"]),
    Route("/v1/products/{product_id}/variants/{variant_id}", patch_variant, methods=["PATCH"]),
]
