"""Pure checkout rules: how a cart splits into orders. No I/O."""

from __future__ import annotations

import uuid
from dataclasses import dataclass


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
