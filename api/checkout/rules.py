"""Pure checkout rules: how a cart splits into orders, and checkout's errors and shapes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

import msgspec

from core.errors import Conflict
from core.http import Schema


class DeliveryLocation(Schema):
    lat: Annotated[float, msgspec.Meta(ge=-85.05112878, le=85.05112878)]
    lon: Annotated[float, msgspec.Meta(ge=-180, le=180)]


class CheckoutBody(Schema):
    """Options (an empty object checks out the whole cart): where to deliver, for riders."""

    delivery_location: DeliveryLocation | None = None


class OutOfStock(Conflict):
    code = "out_of_stock"
    titles = {"en": "Out of stock", "ar": "نفدت الكمية"}
    details = {
        "en": "Not enough units of {sku} are left.",
        "ar": "لم يتبقَّ عدد كافٍ من {sku}.",
    }


class CartEmpty(Conflict):
    code = "cart_empty"
    titles = {"en": "Cart is empty", "ar": "السلة فارغة"}
    details = {"en": "Add items to the cart first.", "ar": "أضف منتجات إلى السلة أولًا."}


class ProductUnavailable(Conflict):
    code = "product_unavailable"
    titles = {"en": "Product unavailable", "ar": "المنتج غير متاح"}
    details = {
        "en": "{sku} is no longer for sale; remove it from the cart.",
        "ar": "{sku} لم يعد معروضًا للبيع؛ أزله من السلة.",
    }


class PriceChanged(Conflict):
    code = "price_changed"
    temporary = True
    titles = {"en": "Price changed", "ar": "تغيّر السعر"}
    details = {
        "en": "The price of {sku} changed during checkout; review the cart and retry.",
        "ar": "تغيّر سعر {sku} أثناء الدفع؛ راجع السلة وأعد المحاولة.",
    }


@dataclass(frozen=True, slots=True)
class Item:
    variant_id: uuid.UUID
    product_id: uuid.UUID
    seller_id: uuid.UUID
    currency: str
    title: str
    sku: str
    price: int
    quantity: int


@dataclass(frozen=True, slots=True)
class Group:
    """The lines that become one order."""

    seller_id: uuid.UUID
    currency: str
    items: tuple[Item, ...]

    @property
    def total(self) -> int:
        return sum(i.price * i.quantity for i in self.items)


def split(items: list[Item]) -> list[Group]:
    """One order per (seller, currency), in a stable order (seller id, currency)."""
    groups: dict[tuple[uuid.UUID, str], list[Item]] = {}
    for item in items:
        groups.setdefault((item.seller_id, item.currency), []).append(item)
    return [
        Group(seller, currency, tuple(sorted(lines, key=lambda i: i.variant_id)))
        for (seller, currency), lines in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1]))
    ]


class PlacedOrder(msgspec.Struct):
    id: str
    state: str
    total: int
    currency: str
    seller_id: str
    reserved_until: str


class CheckoutResult(msgspec.Struct):
    orders: list[PlacedOrder]
