"""Keyset (cursor) pagination shared by list endpoints. Pure: no I/O.

A cursor is an opaque base64url token holding the sort key of the last row a page returned
(`created_at`, `id`); the next page asks for rows strictly after it in the same order. Unlike
OFFSET this stays fast and stable while rows are added.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from datetime import datetime

from core.errors import FieldError, ValidationFailed

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


@dataclass(frozen=True, slots=True)
class Cursor:
    created_at: datetime
    id: uuid.UUID


def encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    raw = f"{created_at.isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str | None) -> Cursor | None:
    """The cursor in `token` (None when absent). Raises ValidationFailed when malformed."""
    if token is None or token == "":
        return None
    try:
        if len(token) > 200:
            raise ValueError("too long")
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        stamp, _, ident = raw.partition("|")
        created = datetime.fromisoformat(stamp)
        if created.tzinfo is None:
            raise ValueError("naive time")
        return Cursor(created, uuid.UUID(ident))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValidationFailed([FieldError("cursor", "not a cursor from this API")]) from None


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
