"""OsmAnd reports exactly as the Traccar Client app builds them, parsed without I/O."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import orjson
import pytest

from tracking.model import KNOT_MPS
from tracking.osmand import OsmAndError, from_json, from_params, parse_timestamp

NOW = 1_765_000_000_000

# Traccar Client for Android (ProtocolFormatter): every field in the query of a POST, the
# timestamp in seconds, speed in knots (location speed * 1.943844).
ANDROID = ("/v1/tracking/osmand?id=K123&timestamp=1764999990&lat=52.520008&lon=13.404954"
           "&speed=19.4384&bearing=87.5&altitude=34.0&accuracy=6.0&batt=81.0&charge=false")
# Traccar Client 9+ (React Native with the background-geolocation library): a JSON body.
JSON_BODY = {
    "location": {
        "timestamp": "2025-12-06T05:46:30.123Z",
        "coords": {"latitude": 52.520008, "longitude": 13.404954, "accuracy": 4.8,
                   "speed": 8.33, "heading": 181.2, "altitude": 40.1, "ellipsoidal_altitude": 40,
                   "heading_accuracy": 12, "speed_accuracy": 0.5, "altitude_accuracy": 2.1},
        "is_moving": True, "uuid": "2c0e1a3b-7b2f-4c8e-9a55-1f0c3c8d7e10",
        "event": "motionchange", "odometer": 1234.5,
        "battery": {"level": 0.83, "is_charging": False},
        "activity": {"type": "on_bicycle", "confidence": 100}, "extras": {},
    },
    "device_id": "K123",
}


def query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def test_query_string_as_the_android_app_sends_it() -> None:
    report = from_params(query(ANDROID), NOW)
    assert report.key == "K123"
    [fix] = report.fixes
    assert (fix.lat, fix.lon, fix.ts_ms) == (52.520008, 13.404954, 1_764_999_990_000)
    assert fix.speed_mps == pytest.approx(19.4384 * KNOT_MPS)
    assert fix.speed_mps == pytest.approx(10.0, abs=0.01)
    assert (fix.heading, fix.altitude_m, fix.accuracy_m) == (87.5, 34.0, 6.0)


def test_form_body_and_alternatives() -> None:
    form = "deviceid=K9&location=1.5,-2.25&timestamp=2025-12-06%2005:46:30&heading=10&speed=-1"
    report = from_params(dict(parse_qsl(form)), NOW)
    assert report.key == "K9"
    [fix] = report.fixes
    assert (fix.lat, fix.lon) == (1.5, -2.25)
    assert fix.ts_ms == 1_764_999_990_000
    assert fix.heading == 10.0 and fix.speed_mps is None


def test_json_body_of_traccar_client_9() -> None:
    report = from_json(orjson.dumps(JSON_BODY), NOW)
    assert report.key == "K123"
    [fix] = report.fixes
    assert fix.ts_ms == 1_764_999_990_123
    assert fix.speed_mps == 8.33  # m/s as sent, no knots conversion
    assert (fix.heading, fix.accuracy_m, fix.altitude_m) == (181.2, 4.8, 40.1)


def test_json_batch_and_unknowns() -> None:
    loc = dict(JSON_BODY["location"])  # type: ignore[arg-type]
    loc["coords"] = {"latitude": 1.0, "longitude": 2.0, "speed": -1, "heading": -1,
                     "accuracy": 5}
    report = from_json(orjson.dumps({"device_id": 77, "location": [loc, loc]}), NOW)
    assert report.key == "77" and len(report.fixes) == 2
    assert report.fixes[0].speed_mps is None and report.fixes[0].heading is None


@pytest.mark.parametrize(("raw", "expected"), [
    ("1764999990", 1_764_999_990_000), ("1764999990.25", 1_764_999_990_250),
    ("1764999990123", 1_764_999_990_123), (1764999990, 1_764_999_990_000),
    ("2025-12-06T05:46:30Z", 1_764_999_990_000), ("2025-12-06T07:46:30+02:00", 1_764_999_990_000),
    ("2025-12-06 05:46:30", 1_764_999_990_000), (None, NOW), ("", NOW),
])
def test_timestamps(raw: object, expected: int) -> None:
    assert parse_timestamp(raw, NOW) == expected


@pytest.mark.parametrize("params", [
    {"lat": "1", "lon": "2"}, {"id": "K", "lat": "1"}, {"id": "K", "lat": "x", "lon": "2"},
    {"id": "K", "lat": "nan", "lon": "2"}, {"id": "K" * 200, "lat": "1", "lon": "2"},
    {"id": "K", "lat": "1", "lon": "2", "timestamp": "yesterday-ish"},
])
def test_malformed_params(params: dict[str, str]) -> None:
    with pytest.raises(OsmAndError):
        from_params(params, NOW)


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"location": {}}',
                                  b'{"device_id": "K", "location": {"coords": {}}}',
                                  b'{"device_id": true, "location": {}}',
                                  b'{"device_id": "K", "location": []}'])
def test_malformed_json(body: bytes) -> None:
    with pytest.raises(OsmAndError):
        from_json(body, NOW)
