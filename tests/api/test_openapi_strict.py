"""The OpenAPI document says what the server does (issue 17, finding 7), checked directly; the
schemathesis run (test_schemathesis.py) checks it broadly."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import Register


def _op(doc: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    op: dict[str, Any] = doc["paths"][path][method]
    return op


def _param(op: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in op["parameters"] if p["name"] == name)


def _schema(doc: dict[str, Any], name: str) -> dict[str, Any]:
    schema: dict[str, Any] = doc["components"]["schemas"][name]
    return schema


async def test_the_document_states_types_formats_and_statuses(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    products = _op(doc, "/v1/products", "get")
    limit = _param(products, "limit")["schema"]["anyOf"][0]
    assert limit == {"type": "integer", "minimum": 1, "maximum": 100}
    assert _param(products, "seller_id")["schema"]["anyOf"][0]["format"] == "uuid"
    assert "pattern" in _param(products, "cursor")["schema"]["anyOf"][0]
    assert _param(_op(doc, "/v1/products/{product_id}", "get"), "product_id")["schema"][
        "format"] == "uuid"
    register = _schema(doc, "RegisterBody")["properties"]
    assert register["email"]["format"] == "email"
    assert register["password"]["minLength"] == 10
    assert sorted(register["role"]["enum"]) == ["buyer", "rider", "seller"]
    assert "uuid" in str(_schema(doc, "AddItemBody")["properties"]["variant_id"])
    assert "delivered" in str(_schema(doc, "TransitionBody")["properties"]["to"])
    checkout = _op(doc, "/v1/checkout", "post")
    key = _param(checkout, "Idempotency-Key")["schema"]
    assert key["pattern"] == r"^[\x21-\x7e]{1,255}$"
    assert {"400", "402", "415", "422"} <= set(checkout["responses"])
    assert "\\x00" in _schema(doc, "CreateShow")["properties"]["title"]["pattern"]


async def test_405_lists_every_method_of_the_path(client: httpx.AsyncClient) -> None:
    r = await client.request("OPTIONS", "/v1/products")
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, HEAD, POST"
    r = await client.request("TRACE", "/v1/ws")
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, HEAD"
    r = await client.get("/v1/ws")
    assert r.status_code == 426
    assert r.json()["code"] == "upgrade_required"


async def test_integer_valued_floats_are_integers(
    client: httpx.AsyncClient, register: Register
) -> None:
    buyer = await register()
    r = await client.post("/v1/wallet/topups", json={"amount": 2064.0}, headers=buyer.headers)
    assert r.status_code == 201, r.text
    assert r.json()["transfer"]["amount"] == 2064
    r = await client.post("/v1/wallet/topups", json={"amount": 2064.5}, headers=buyer.headers)
    assert r.status_code == 422
    r = await client.post("/v1/wallet/topups", json={"amount": 1}, headers={
        **buyer.headers, "Idempotency-Key": "has space"})
    assert r.status_code == 422


async def test_tracking_and_streaming_parameters_are_stated(client: httpx.AsyncClient) -> None:
    """What test_schemathesis.py leaves out (OsmAnd, the SDP offers) is still documented."""
    doc = (await client.get("/openapi.json")).json()
    for method in ("get", "post"):
        osmand = _op(doc, "/v1/tracking/osmand", method)
        names = {p["name"] for p in osmand["parameters"]}
        assert {"id", "deviceid", "lat", "lon", "location", "timestamp", "speed", "bearing",
                "heading", "accuracy", "altitude"} <= names
        assert not any(p["required"] for p in osmand["parameters"])  # which is needed varies
        assert _param(osmand, "lat")["schema"]["anyOf"][0] == {"type": "number"}
    assert "JSON body" in _op(doc, "/v1/tracking/osmand", "post")["summary"]
    track = _op(doc, "/v1/tracking/riders/{rider_id}/track", "get")
    assert _param(track, "minutes")["schema"]["anyOf"][0]["maximum"] == 7 * 24 * 60
    assert _param(track, "limit")["schema"]["anyOf"][0]["maximum"] == 5000
    whip = _op(doc, "/v1/shows/{show_id}/whip", "post")
    assert list(whip["requestBody"]["content"]) == ["application/sdp"]
    session = _param(_op(doc, "/v1/shows/{show_id}/whip/{session_id}", "delete"), "session_id")
    assert session["schema"]["pattern"] == "^[A-Za-z0-9_-]{24}$"
    assert "405" in _op(doc, "/v1/shows/{show_id}/whep/{session_id}", "patch")["responses"]
