"""The OsmAnd protocol as the Traccar Client app speaks it, parsed into `Fix`es (pure).

Three shapes reach `GET`/`POST /v1/tracking/osmand`:

- query string (Traccar Client up to 8, Android and iOS: a `POST` with an empty body and every
  field in the query; OsmAnd and scripts use `GET`):
  `?id=KEY&timestamp=1700000000&lat=52.5&lon=13.4&speed=12.3&bearing=90&altitude=35&accuracy=8&batt=77.0&charge=false`
- a form body (`application/x-www-form-urlencoded`) with the same fields;
- the JSON body of Traccar Client 9+ (`application/json`):
  `{"location": {"timestamp": "2025-01-02T03:04:05.678Z", "coords": {"latitude", "longitude",
  "accuracy", "speed", "heading", "altitude"}, "is_moving", "odometer", "event", "battery":
  {"level", "is_charging"}, "activity": {"type"}, "extras": {}}, "device_id": "KEY"}`
  (`location` may also be a list: a batch the app saved while offline).

Units: `speed` is in **knots** in the query/form shape and in **m/s** in the JSON shape; a
negative speed, heading or accuracy (what the phone reports when it does not know) means
"unknown". `timestamp` is unix seconds (fractions allowed), unix milliseconds, ISO 8601 (with
`T`) or `yyyy-MM-dd HH:mm:ss` (UTC); missing means the server's time. `location=lat,lon` may
replace `lat`/`lon`. Unknown fields are ignored, as Traccar stores them as attributes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from tracking.model import KNOT_MPS, Fix

MAX_KEY_LENGTH = 128
MAX_BATCH = 100
# Numbers below this are seconds, above it milliseconds (10^11 s is the year 5138; 10^11 ms is
# 1973: no phone reports either).
_SECONDS_BELOW = 100_000_000_000


class OsmAndError(ValueError):
    """The request is not an OsmAnd report (answered 400)."""


@dataclass(frozen=True, slots=True)
class Report:
    """One request: the device key and its fixes (one, or a batch from the JSON shape)."""

    key: str
    fixes: tuple[Fix, ...]


def device_key(params: Mapping[str, str]) -> str:
    key = (params.get("id") or params.get("deviceid") or "").strip()
    if not key or len(key) > MAX_KEY_LENGTH:
        raise OsmAndError("id (the device key) is required")
    return key


def _number(raw: object, name: str) -> float | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool):
        raise OsmAndError(f"{name} must be a number")
    if isinstance(raw, int | float):
        value = float(raw)
    elif isinstance(raw, str) and len(raw) <= 40:
        try:
            value = float(raw)
        except ValueError:
            raise OsmAndError(f"{name} must be a number") from None
    else:
        raise OsmAndError(f"{name} must be a number")
    if not math.isfinite(value):
        raise OsmAndError(f"{name} must be finite")
    return value


def _known(value: float | None) -> float | None:
    """Phones report -1 for an unknown speed, heading or accuracy."""
    return None if value is None or value < 0 else value


def parse_timestamp(raw: object, now_ms: int) -> int:
    """Epoch milliseconds from unix seconds, unix milliseconds or an ISO 8601 string."""
    if raw is None or raw == "":
        return now_ms
    if isinstance(raw, str) and len(raw) > 40:
        raise OsmAndError("timestamp is too long")
    if isinstance(raw, str) and ("T" in raw or "-" in raw[1:]):
        text = raw.strip().replace(" ", "T", 1)
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise OsmAndError("timestamp is not a date") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return round(moment.timestamp() * 1000)
    value = _number(raw, "timestamp")
    assert value is not None
    if value < 0:
        raise OsmAndError("timestamp must not be negative")
    return round(value * 1000) if value < _SECONDS_BELOW else round(value)


def from_params(params: Mapping[str, str], now_ms: int) -> Report:
    """A query-string or form report (speed in knots)."""
    key = device_key(params)
    lat, lon = _number(params.get("lat"), "lat"), _number(params.get("lon"), "lon")
    location = params.get("location")
    if (lat is None or lon is None) and location:
        first, _, second = location.partition(",")
        lat, lon = _number(first, "location"), _number(second, "location")
    if lat is None or lon is None:
        raise OsmAndError("lat and lon are required")
    knots = _known(_number(params.get("speed"), "speed"))
    heading = params.get("bearing")
    if heading is None:
        heading = params.get("heading")
    fix = Fix(
        lat=lat, lon=lon, ts_ms=parse_timestamp(params.get("timestamp"), now_ms),
        speed_mps=None if knots is None else knots * KNOT_MPS,
        heading=_known(_number(heading, "bearing")),
        accuracy_m=_known(_number(params.get("accuracy"), "accuracy")),
        altitude_m=_number(params.get("altitude"), "altitude"),
    )
    return Report(key, (fix,))


def _json_fix(location: object, now_ms: int) -> Fix:
    if not isinstance(location, dict):
        raise OsmAndError("location must be an object")
    coords = location.get("coords")
    if not isinstance(coords, dict):
        raise OsmAndError("location.coords is required")
    lat = _number(coords.get("latitude"), "latitude")
    lon = _number(coords.get("longitude"), "longitude")
    if lat is None or lon is None:
        raise OsmAndError("coords.latitude and coords.longitude are required")
    return Fix(
        lat=lat, lon=lon, ts_ms=parse_timestamp(location.get("timestamp"), now_ms),
        speed_mps=_known(_number(coords.get("speed"), "speed")),
        heading=_known(_number(coords.get("heading"), "heading")),
        accuracy_m=_known(_number(coords.get("accuracy"), "accuracy")),
        altitude_m=_number(coords.get("altitude"), "altitude"),
    )


def from_json(body: bytes, now_ms: int, query: Mapping[str, str] | None = None) -> Report:
    """A Traccar Client 9+ JSON report (speed in m/s). The key may also be in the query."""
    try:
        doc: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise OsmAndError("the body is not JSON") from None
    if not isinstance(doc, dict):
        raise OsmAndError("the body must be a JSON object")
    raw_key = doc.get("device_id")
    if raw_key is None and query is not None:
        raw_key = query.get("id") or query.get("deviceid")
    if not isinstance(raw_key, str | int) or isinstance(raw_key, bool):
        raise OsmAndError("device_id (the device key) is required")
    key = device_key({"id": str(raw_key)})
    location = doc.get("location")
    items = location if isinstance(location, list) else [location]
    if not items or len(items) > MAX_BATCH:
        raise OsmAndError(f"location must hold 1 to {MAX_BATCH} positions")
    return Report(key, tuple(_json_fix(item, now_ms) for item in items))
