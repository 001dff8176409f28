"""Typed ids and amounts shared across packages.

Entity ids are UUIDs (v4, made by PostgreSQL's `gen_random_uuid()`), so ids leak no counts and
cannot be enumerated. Money is always an integer number of minor units (`Cents`) with an ISO 4217
currency code beside it; floats never carry money.
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated, NewType

import msgspec

UserId = NewType("UserId", uuid.UUID)
Cents = NewType("Cents", int)
Currency = NewType("Currency", str)


# The one text form of an id the API accepts (what `format: uuid` means to OpenAPI tools).
UUID_PATTERN = (r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                r"[0-9a-fA-F]{12}$")
_UUID_RE = re.compile(UUID_PATTERN)
# A request body field holding an id as text.
UuidText = Annotated[str, msgspec.Meta(pattern=UUID_PATTERN, extra_json_schema={"format": "uuid"})]


def parse_uuid(value: str) -> uuid.UUID | None:
    """The UUID in `value` (the hyphenated 8-4-4-4-12 form only), or None when it is not one
    (never raises)."""
    if not isinstance(value, str) or not _UUID_RE.match(value):
        return None
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return None
