"""Catalog request bodies with their limits, and views (msgspec schemas)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from core.http import Schema

MAX_VARIANTS = 50
MAX_IMAGES = 10
MAX_URL = 2048
MAX_PRICE = 10_000_000_000  # 100 million in major units: far beyond any live-commerce item
MAX_STOCK = 1_000_000

Title = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Description = Annotated[str, msgspec.Meta(max_length=5000)]
CurrencyCode = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")]
Sku = Annotated[
    str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
]
Price = Annotated[int, msgspec.Meta(ge=1, le=MAX_PRICE)]
Stock = Annotated[int, msgspec.Meta(ge=0, le=MAX_STOCK)]
# The schema's approximation of `rules.image_problem` (which also refuses local and reserved
# names).
_IMAGE_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
IMAGE_URL_PATTERN = (rf"^[Hh][Tt][Tt][Pp][Ss]://{_IMAGE_LABEL}(\.{_IMAGE_LABEL})*"
                     r"\.[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(:[0-9]{1,5})?"
                     r"([/?#][\x21-\x7e]*)?$")
ImageUrl = Annotated[str, msgspec.Meta(min_length=9, max_length=MAX_URL,
                                       extra_json_schema={"pattern": IMAGE_URL_PATTERN})]
Images = Annotated[list[ImageUrl], msgspec.Meta(max_length=MAX_IMAGES)]
Status = Literal["draft", "published"]


class VariantIn(Schema):
    sku: Sku
    price: Price
    stock: Stock


class CreateProductBody(Schema):
    title: Title
    variants: Annotated[list[VariantIn], msgspec.Meta(min_length=1, max_length=MAX_VARIANTS)]
    description: Description = ""
    currency: CurrencyCode | None = None
    images: Images = msgspec.field(default_factory=list)
    status: Status = "published"


class PatchProductBody(Schema):
    """The fields a seller may change on a product (an allow-list: anything else is refused)."""

    title: Title | msgspec.UnsetType = msgspec.UNSET
    description: Description | msgspec.UnsetType = msgspec.UNSET
    images: Images | msgspec.UnsetType = msgspec.UNSET


class PatchVariantBody(Schema):
    """`stock` sets the units available for sale; units reserved by open orders stay reserved."""

    sku: Sku | msgspec.UnsetType = msgspec.UNSET
    price: Price | msgspec.UnsetType = msgspec.UNSET
    stock: Stock | msgspec.UnsetType = msgspec.UNSET


class VariantView(msgspec.Struct, omit_defaults=True):
    id: str
    sku: str
    price: int
    stock: int
    on_hand: int | None = None
    reserved: int | None = None
    sold: int | None = None


class ProductView(msgspec.Struct):
    id: str
    seller_id: str
    title: str
    description: str
    currency: str
    status: str
    images: list[str]
    min_price: int
    variants: list[VariantView]
    created_at: str
    updated_at: str


class ProductPage(msgspec.Struct):
    items: list[ProductView]
    next_cursor: str | None
