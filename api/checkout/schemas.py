"""Checkout's request body and result views (msgspec schemas)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from core.http import Schema


class DeliveryLocation(Schema):
    lat: Annotated[float, msgspec.Meta(ge=-85.05112878, le=85.05112878)]
    lon: Annotated[float, msgspec.Meta(ge=-180, le=180)]


class CheckoutBody(Schema):
    """Options (an empty object checks out the whole cart): where to deliver, for riders."""

    delivery_location: DeliveryLocation | None = None


class PlacedOrder(msgspec.Struct):
    id: str
    state: str
    total: int
    currency: str
    seller_id: str
    reserved_until: str


class CheckoutResult(msgspec.Struct):
    orders: list[PlacedOrder]
