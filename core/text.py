"""Which characters user text may hold (pure: no I/O).

Refused everywhere: the C0 and C1 control characters (NUL, ESC and the rest; PostgreSQL refuses
NUL outright, terminals obey ESC sequences) and the bidirectional embeddings, overrides and
isolates (U+202A-U+202E, U+2066-U+2069: "Trojan Source" text that reads differently from what
it holds), and the line and paragraph separators U+2028/U+2029. Multi-line fields (descriptions)
may also hold tab, line feed and carriage return. Everything else is allowed, in particular the
joiners and marks real scripts need (ZWJ in emoji sequences, ZWNJ in Persian, LRM/RLM in Arabic
mixed with Latin).

`core.http.decode_json` applies `control_errors` to every decoded request body, so every text
field of every route is covered in one place; query strings are checked by the HTTP middleware
and chat text by the chat rules, with the same `first_refused`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec

from core.errors import FieldError

_BIDI = frozenset(range(0x202A, 0x202F)) | frozenset(range(0x2066, 0x206A))
_REFUSED = frozenset(range(0x00, 0x20)) | frozenset(range(0x7F, 0xA0)) | _BIDI | {0x2028, 0x2029}
_MULTILINE_OK = frozenset({0x09, 0x0A, 0x0D})
# Body fields that may span lines (the last part of the field's path).
MULTILINE_FIELDS = frozenset({"description"})
MESSAGE = "must not contain control characters ({})"


def first_refused(text: str, *, multiline: bool = False) -> str | None:
    """`U+XXXX` of the first refused character in `text`, or None when all are allowed."""
    for ch in text:
        code = ord(ch)
        if code in _REFUSED and not (multiline and code in _MULTILINE_OK):
            return f"U+{code:04X}"
    return None


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every string inside a decoded body, with its dotted path (dict keys included)."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, msgspec.Struct):
        for name in value.__struct_fields__:
            yield from _strings(getattr(value, name), f"{path}.{name}".lstrip("."))
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str):
                yield f"{path}.{key}".lstrip("."), key
            yield from _strings(item, f"{path}.{key}".lstrip("."))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from _strings(item, f"{path}.{i}".lstrip("."))


def control_errors(value: Any, *, prefix: str = "") -> list[FieldError]:
    """A FieldError for each string in `value` holding a refused character."""
    errors: list[FieldError] = []
    for path, text in _strings(value, prefix):
        multiline = path.rsplit(".", 1)[-1] in MULTILINE_FIELDS
        found = first_refused(text, multiline=multiline)
        if found is not None:
            errors.append(FieldError(path or "$", MESSAGE.format(found)))
    return errors
