"""What the server accepts, said in JSON Schema where msgspec types cannot say it: the text
character rule (core/text.py) on every free string, query parameter types and ranges, path
parameter formats, and the problem statuses any operation can answer.

`api.openapi.build_document` applies these; tests/api/test_schemathesis.py holds the document to
the server's behaviour with schemathesis (`--checks all`).
"""

from __future__ import annotations

from typing import Any

from api.accounts.rules import PASSWORD_MIN
from api.orders.machine import OrderState
from api.paging import CURSOR_RE
from core.ids import UUID_PATTERN
from core.text import MULTILINE_FIELDS
from streaming.session import SESSION_ID_PATTERN

_REFUSED = r"\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069"
TEXT_PATTERN = f"^[^{_REFUSED}]*$"
MULTILINE_PATTERN = (r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029"
                     r"\u202a-\u202e\u2066-\u2069]*$")
CURSOR_PATTERN = CURSOR_RE.pattern
# fields the server refuses when only spaces
NONBLANK_FIELDS = frozenset({"title", "display_name", "account_holder", "bank_name"})
NONBLANK_PATTERN = f"^[^{_REFUSED}]*[^\\s{_REFUSED}][^{_REFUSED}]*$"

_UUID: dict[str, Any] = {"type": "string", "format": "uuid", "pattern": UUID_PATTERN}
_TEXT: dict[str, Any] = {"type": "string", "pattern": TEXT_PATTERN}


def _limit(high: int) -> dict[str, Any]:
    return {"type": "integer", "minimum": 1, "maximum": high}


def _enum(values: list[str]) -> dict[str, Any]:
    return {"type": "string", "enum": values}


_AUCTION_STATE = "(scheduled|open|closed|cancelled)"
# Query parameters by name, then by (path, name) where a route differs.
QUERY: dict[str, dict[str, Any]] = {
    "limit": _limit(100),
    "cursor": {"type": "string", "pattern": CURSOR_PATTERN},
    "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
    "seller_id": _UUID, "buyer_id": _UUID, "rider_id": _UUID, "show_id": _UUID,
    "order_id": _UUID, "user_id": _UUID,
    "after": {"type": "integer", "minimum": 0, "maximum": 2**62},
    "min_price": {"type": "integer", "minimum": 0}, "max_price": {"type": "integer", "minimum": 0},
    "q": {**_TEXT, "maxLength": 200},
    "state": _enum([s.value for s in OrderState]),
    "role": _enum(["buyer", "seller", "rider", "admin"]),
}
QUERY_BY_PATH: dict[tuple[str, str], dict[str, Any]] = {
    ("/v1/admin/orders", "limit"): _limit(50),
    ("/v1/admin/users", "cursor"): _UUID,
    ("/v1/admin/users", "q"): {**_TEXT, "maxLength": 100},
    ("/v1/shows", "state"): _enum(["scheduled", "live", "ended"]),
    ("/v1/auctions", "state"): {"type": "string",
                                "pattern": f"^{_AUCTION_STATE}(,{_AUCTION_STATE})*$"},
    ("/v1/auctions", "cursor"): _UUID,
    ("/v1/auctions", "limit"): _limit(500),
    ("/v1/auctions/{auction_id}/bids", "limit"): _limit(500),
    ("/v1/auctions/{auction_id}/attempts", "limit"): _limit(500),
    ("/v1/admin/dead-letters", "cursor"): {"type": "string", "pattern": "^[0-9]{1,18}$"},
    ("/v1/wallet/statement", "cursor"): {"type": "integer", "minimum": 1, "maximum": 2**62},
    ("/v1/tracking/riders/{rider_id}/track", "minutes"): _limit(7 * 24 * 60),
    ("/v1/tracking/riders/{rider_id}/track", "limit"): _limit(5000),
    ("/v1/orders/{order_id}/track", "limit"): _limit(5000),
    ("/v1/tracking/riders/online", "limit"): _limit(500),
}
# OsmAnd (tracking/osmand.py): what the Traccar Client app may send, not narrowed.
_OSMAND = "/v1/tracking/osmand"
QUERY_BY_PATH.update({(_OSMAND, name): {"type": "number"} for name in (
    "lat", "lon", "speed", "bearing", "heading", "accuracy", "altitude")})
QUERY_BY_PATH.update({
    (_OSMAND, "id"): {**_TEXT, "maxLength": 128},
    (_OSMAND, "deviceid"): {**_TEXT, "maxLength": 128},
    (_OSMAND, "timestamp"): {**_TEXT, "maxLength": 40},
    (_OSMAND, "location"): {**_TEXT, "maxLength": 81},
})


LEDGER_PATHS = ("/v1/wallet", "/v1/seller/balance", "/v1/seller/payouts", "/v1/admin/wallets")
# operations that refuse a request without Idempotency-Key
IDEMPOTENCY_REQUIRED = frozenset({"/v1/admin/orders/{order_id}/refunds"})
_EMPTY: dict[str, Any] = {"type": "string", "maxLength": 0}


def query_schema(path: str, name: str, currencies: list[str]) -> dict[str, Any]:
    """A query parameter's schema; an empty value is always allowed (it means absent)."""
    if name == "currency" and path.startswith(LEDGER_PATHS):
        return {"anyOf": [{"type": "string", "enum": currencies}, _EMPTY]}
    schema = dict(QUERY_BY_PATH.get((path, name)) or QUERY.get(name) or _TEXT)
    if schema == _TEXT or schema.get("pattern") == TEXT_PATTERN:
        return schema
    return {"anyOf": [schema, _EMPTY]}


def ledger_bodies(components: dict[str, Any], currencies: list[str]) -> None:
    """Money bodies take only the server's currencies, and an adjustment is never zero."""
    for name in ("TopupBody", "PayoutBody", "PayoutRequestBody", "AdjustmentBody"):
        props = components.get(name, {}).get("properties", {})
        if "currency" in props:
            props["currency"] = {"anyOf": [{"type": "string", "enum": currencies},
                                           {"type": "null"}]}
    password = components.get("RegisterBody", {}).get("properties", {}).get("password")
    if password is not None:
        password["minLength"] = PASSWORD_MIN
    amount = components.get("AdjustmentBody", {}).get("properties", {}).get("amount")
    if amount is not None:
        amount["not"] = {"const": 0}


def path_schema(name: str) -> dict[str, Any]:
    if name == "session_id":  # WHIP/WHEP sessions: not UUIDs
        return {"type": "string", "pattern": SESSION_ID_PATTERN}
    if name.endswith("_id"):
        return dict(_UUID)
    if name == "seq":
        return {"type": "integer", "minimum": 1, "maximum": 2**62}
    if name == "channel":
        return {"type": "string", "pattern": r"^[a-z:0-9-]{1,64}$"}
    return dict(_TEXT)


# Tools do not assert formats by default (an empty string "is" a date-time): say it twice.
_FORMAT_PATTERNS = {
    "date-time": (r"^(000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})-(0[1-9]|1[0-2])-"
                  r"(0[1-9]|1[0-9]|2[0-8])[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
                  r"(\.[0-9]{1,6})?([Zz]|[+-](0[0-9]|1[0-3]):[0-5][0-9])$"),
    "email": r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$",
}


def tighten(schema: Any, name: str = "", *, request: bool = False) -> None:
    """Give every free string in `schema` (in place) the character rule of core/text.py; in
    request bodies (`request`), `*_at` strings are RFC 3339 times."""
    if isinstance(schema, list):
        for item in schema:
            tighten(item, name, request=request)
        return
    if not isinstance(schema, dict):
        return
    kind = schema.get("type")
    is_string = kind == "string" or (isinstance(kind, list) and "string" in kind)
    if is_string and schema.get("format") in _FORMAT_PATTERNS and "pattern" not in schema:
        schema["pattern"] = _FORMAT_PATTERNS[schema["format"]]
    if request and is_string and name.endswith("_at") and not ({"pattern", "enum"} & schema.keys()):
        schema["pattern"] = _FORMAT_PATTERNS["date-time"]
    if is_string and not ({"pattern", "format", "enum", "const"} & schema.keys()):
        schema["pattern"] = (MULTILINE_PATTERN if name in MULTILINE_FIELDS
                             else NONBLANK_PATTERN if name in NONBLANK_FIELDS else TEXT_PATTERN)
    for key, value in schema.items():
        if key == "properties" and isinstance(value, dict):
            for prop, sub in value.items():
                tighten(sub, prop, request=request)
        elif key in ("items", "anyOf", "oneOf", "allOf", "additionalProperties", "$defs"):
            tighten(value, name, request=request)


def extra_errors(*, has_body: bool, auth: bool, path: str, method: str) -> tuple[int, ...]:
    """Statuses any such operation can answer besides its own: a query string with control
    characters (422), an unusable body (400, 413, 415, 422), a bad token (401), an
    unavailable dependency (503), too many requests (429)."""
    out = [422, 503]
    if has_body:
        out += [400, 413, 415]
    if auth:
        out += [401, 403]
    if method in ("post", "put", "patch", "delete"):
        out += [409, 429]
    if path.startswith(("/v1/checkout", "/v1/orders/", "/v1/auctions/", "/v1/seller/payouts",
                        "/v1/admin/wallets")):
        out.append(402)  # insufficient funds
    return tuple(out)
