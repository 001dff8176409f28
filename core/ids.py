"""Typed ids and amounts shared across packages.

Entity ids are UUIDs (v4, made by PostgreSQL's `gen_random_uuid()`), so ids leak no counts and
cannot be enumerated. Money is always an integer number of minor units (`Cents`) with an ISO 4217
currency code beside it; floats never carry money.
"""

from __future__ import annotations

import uuid
from typing import NewType

UserId = NewType("UserId", uuid.UUID)
Cents = NewType("Cents", int)
Currency = NewType("Currency", str)


def parse_uuid(value: str) -> uuid.UUID | None:
    """The UUID in `value`, or None when it is not one (never raises)."""
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return None
