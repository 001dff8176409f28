"""What tracking needs from the orders domain, injected by the composition root (api/)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import asyncpg

from tracking.live import Assignment


@dataclass(frozen=True, slots=True)
class OrderFacts:
    id: uuid.UUID
    state: str
    buyer_id: uuid.UUID
    seller_id: uuid.UUID
    rider_id: uuid.UUID | None


@dataclass(frozen=True, slots=True)
class Segment:
    """The part of a rider's track that belongs to one delivery."""

    buyer_id: uuid.UUID
    rider_id: uuid.UUID
    start: datetime
    end: datetime | None  # None while out for delivery


class Orders(Protocol):
    async def display_names(self, user_ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
        """The display names of these users (accounts domain); unknown ids are left out."""

    async def assignment(self, rider_id: uuid.UUID) -> Assignment | None:
        """The order the rider is assigned to and has not delivered (paid, packed or
        out_for_delivery), with its pickup and drop-off when known."""

    async def facts(self, conn: asyncpg.Connection | asyncpg.Pool,
                    order_id: uuid.UUID, *, lock: bool = False) -> OrderFacts | None:
        """The order's state and parties; with `lock`, its row is locked for the caller's
        transaction (the orders domain's lock order: the order row first)."""

    async def assign(self, conn: asyncpg.Connection, order_id: uuid.UUID,
                     rider_id: uuid.UUID) -> None:
        """Make `rider_id` the order's rider in the caller's transaction (its history and its
        outbox event included)."""

    async def segment(self, order_id: uuid.UUID) -> Segment | None:
        """The order's delivery segment (from out_for_delivery until delivered or over)."""
