"""Cart request bodies and views (msgspec schemas)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from core.http import Schema
from core.ids import UuidText

MAX_QUANTITY = 99


class AddItemBody(Schema):
    """Adds `quantity` to the line of `variant_id` (the line's total is capped)."""

    variant_id: UuidText
    quantity: Annotated[int, msgspec.Meta(ge=1, le=MAX_QUANTITY)] = 1


class CartLineView(msgspec.Struct):
    variant_id: str
    product_id: str
    seller_id: str
    title: str
    sku: str
    price: int
    currency: str
    quantity: int
    available: int
    line_total: int


class CartTotal(msgspec.Struct):
    currency: str
    amount: int


class CartView(msgspec.Struct):
    items: list[CartLineView]
    totals: list[CartTotal]
