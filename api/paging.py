"""Keyset (cursor) pagination shared by list endpoints. Pure: no I/O.

A cursor is an opaque token holding the sort key of the last row a page returned: `created_at`
in microseconds since 1970 and `id`, as `<micros>-<uuid hex>`; the next page asks for rows
strictly after it in the same order. Unlike OFFSET this stays fast and stable while rows are
added. Every token matching `CURSOR_RE` is a cursor, so the OpenAPI pattern is exact.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from core.errors import FieldError, ValidationFailed

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
CURSOR_RE = re.compile(r"^([0-9]{1,16})-([0-9a-f]{32})$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Cursor:
    created_at: datetime
    id: uuid.UUID


def encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    micros = (created_at - _EPOCH) // timedelta(microseconds=1)
    return f"{micros}-{row_id.hex}"


def decode_cursor(token: str | None) -> Cursor | None:
    """The cursor in `token` (None when absent). Raises ValidationFailed when malformed. Every
    token matching `CURSOR_RE` is a cursor (the OpenAPI document says exactly that)."""
    if token is None or token == "":
        return None
    match = CURSOR_RE.match(token)
    if match is None:
        raise ValidationFailed([FieldError("cursor", "not a cursor from this API")])
    created = _EPOCH + timedelta(microseconds=int(match.group(1)))
    return Cursor(created, uuid.UUID(hex=match.group(2)))


def parse_limit(raw: str | None, *, default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT) -> int:
    """The page size asked for, between 1 and `maximum`."""
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= maximum:
        raise ValidationFailed([FieldError("limit", f"must be an integer from 1 to {maximum}")])
    return value
