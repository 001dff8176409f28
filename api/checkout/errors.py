"""Checkout's errors: what a cart can meet between the cart and the order."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from core.errors import Conflict


class OutOfStock(Conflict):
    code = "out_of_stock"
    titles: ClassVar[Mapping[str, str]] = {"en": "Out of stock", "ar": "نفدت الكمية"}
    details: ClassVar[Mapping[str, str]] = {
        "en": "Not enough units of {sku} are left.",
        "ar": "لم يتبقَّ عدد كافٍ من {sku}.",
    }


class CartEmpty(Conflict):
    code = "cart_empty"
    titles: ClassVar[Mapping[str, str]] = {"en": "Cart is empty", "ar": "السلة فارغة"}
    details: ClassVar[Mapping[str, str]] = {
        "en": "Add items to the cart first.",
        "ar": "أضف منتجات إلى السلة أولًا.",
    }


class ProductUnavailable(Conflict):
    code = "product_unavailable"
    titles: ClassVar[Mapping[str, str]] = {"en": "Product unavailable", "ar": "المنتج غير متاح"}
    details: ClassVar[Mapping[str, str]] = {
        "en": "{sku} is no longer for sale; remove it from the cart.",
        "ar": "{sku} لم يعد معروضًا للبيع؛ أزله من السلة.",
    }


class PriceChanged(Conflict):
    code = "price_changed"
    temporary = True
    titles: ClassVar[Mapping[str, str]] = {"en": "Price changed", "ar": "تغيّر السعر"}
    details: ClassVar[Mapping[str, str]] = {
        "en": "The price of {sku} changed during checkout; review the cart and retry.",
        "ar": "تغيّر سعر {sku} أثناء الدفع؛ راجع السلة وأعد المحاولة.",
    }
