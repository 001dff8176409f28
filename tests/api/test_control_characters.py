"""Control characters are refused at the schema layer with 422, never a 500 (issue 17, finding 2):
named reproductions, then a property test over every string field of every operation in
/openapi.json."""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from core.config import Settings
from tests.conftest import Account, Register
from tests.realtime.wsclient import WsClient
from tests.support.servers import ServerProcess
from tests.support.services import drop_isolation, make_settings


@pytest.fixture
async def settings(key_dir: Path) -> AsyncIterator[Settings]:
    """Payout details need an encryption key (without one they answer 503 before reading)."""
    key = base64.b64encode(b"k" * 32).decode()
    s = make_settings(key_dir, encryption_keys={"k1": key}, encryption_active_kid="k1")
    yield s
    await drop_isolation(s)


NUL, BIDI, ESC = "\u0000", "\u202e", "\x1b[31m"
BAD = [f"a{NUL}b", f"{BIDI}evil", f"a{ESC}", "two\nlines", "x\u2066y", "\x7f", "\x85"]


def _refused(r: httpx.Response, field: str) -> None:
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["code"] == "validation_failed"
    assert field in {e["field"] for e in body["errors"]}, body


@pytest.mark.parametrize("bad", BAD)
async def test_login_and_register_refuse_control_characters_without_signing_in(
    client: httpx.AsyncClient, bad: str
) -> None:
    r = await client.post("/v1/auth/login", json={"email": f"a{bad}@x.io",
                                                  "password": "correct horse battery"})
    _refused(r, "email")
    r = await client.post("/v1/auth/register", json={
        "email": f"a{bad}@x.io", "password": "correct horse battery", "display_name": "A"})
    _refused(r, "email")


async def test_titles_and_descriptions(client: httpx.AsyncClient, register: Register) -> None:
    seller = await register("seller")
    variant = {"sku": "S-1", "price": 100, "stock": 1}
    for bad in BAD:
        r = await client.post("/v1/products", headers=seller.headers,
                              json={"title": f"t{bad}", "variants": [variant]})
        _refused(r, "title")
        r = await client.post("/v1/shows", headers=seller.headers, json={"title": f"t{bad}"})
        _refused(r, "title")
    for bad in (NUL, BIDI, ESC):
        r = await client.post("/v1/products", headers=seller.headers,
                              json={"title": "t", "description": f"d{bad}",
                                    "variants": [variant]})
        _refused(r, "description")
    # Descriptions may span lines; titles may not.
    r = await client.post("/v1/products", headers=seller.headers,
                          json={"title": "Lamp", "description": "Brass.\r\nWorks.\tOld.",
                                "variants": [variant]})
    assert r.status_code == 201, r.text
    product = r.json()
    r = await client.patch(f"/v1/products/{product['id']}", headers=seller.headers,
                           json={"title": f"Lamp{NUL}"})
    _refused(r, "title")


async def test_query_parameters(client: httpx.AsyncClient, register: Register) -> None:
    admin = await register("admin")
    for path in ("/v1/products", "/v1/admin/users", "/v1/shows"):
        for bad in ("%00", "%E2%80%AE", "%1B"):
            r = await client.get(f"{path}?q=x{bad}", headers=admin.headers)
            _refused(r, "query.q")
    assert (await client.get("/v1/products?q=caf%C3%A9")).status_code == 200


async def test_chat_text_gets_a_typed_error_frame(
    servers: Callable[..., ServerProcess], register: Register, client: httpx.AsyncClient
) -> None:
    server = servers()
    seller, talker = await register("seller"), await register()
    show = (await client.post("/v1/shows", json={"title": "Live"}, headers=seller.headers)).json()
    await client.post(f"/v1/shows/{show['id']}/start", headers=seller.headers)
    chat = f"show:{show['id']}:chat"
    ws = await WsClient.open(server.ws_url, token=talker.access_token)
    assert "result" in await ws.call("subscribe", channel=chat)
    for bad in (f"{BIDI}evil", f"a{ESC}", f"a{NUL}"):
        r = await ws.call("publish", channel=chat, data={"text": bad})
        assert r["error"]["code"] == "validation_failed", r
    r = await ws.call("publish", channel=chat, data={"text": "hello"})
    assert "result" in r
    [only] = [p for p in await ws.publications(1) if p["data"].get("type") == "chat"]
    assert only["data"]["text"] == "hello"  # nothing refused reached the viewers
    await ws.close()


# -- every string field of every operation in /openapi.json --------------------------------

def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = doc["components"]["schemas"][name]
    return schema


def _sample(doc: dict[str, Any], schema: dict[str, Any], depth: int = 0) -> Any:
    """A plausible value for `schema` (not necessarily valid: the server must never 500)."""
    schema = _resolve(doc, schema)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [s for s in schema[key] if _resolve(doc, s).get("type") != "null"]
            return _sample(doc, options[0] if options else schema[key][0], depth)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        if depth > 4:
            return {}
        return {k: _sample(doc, v, depth + 1) for k, v in schema.get("properties", {}).items()}
    if kind == "array":
        return [_sample(doc, schema.get("items", {}), depth + 1)]
    if kind == "integer":
        return max(1, int(schema.get("minimum", 1)))
    if kind == "number":
        return 1.0
    if kind == "boolean":
        return True
    if schema.get("format") == "uuid":
        return str(uuid.uuid4())
    return "text"


def _string_paths(doc: dict[str, Any], value: Any, schema: dict[str, Any],
                  path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    schema = _resolve(doc, schema)
    if isinstance(value, str):
        return [path]
    if isinstance(value, dict):
        props = schema.get("properties", {})
        return [p for k, v in value.items()
                for p in _string_paths(doc, v, props.get(k, {}), (*path, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value)
                for p in _string_paths(doc, v, schema.get("items", {}), (*path, i))]
    return []


def _with(value: Any, path: tuple[Any, ...], text: str) -> Any:
    if not path:
        return text
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _with(value[head], rest, text)}
    out = list(value)
    out[head] = _with(value[head], rest, text)
    return out


Case = tuple[str, str, str, tuple[Any, ...]]  # method, path, where, field path


def _cases(doc: dict[str, Any]) -> list[tuple[Case, Any]]:
    cases: list[tuple[Case, Any]] = []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            for param in op.get("parameters", []):
                if param["in"] == "query":
                    cases.append(((method, path, "query", (param["name"],)), None))
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if body is None:
                continue
            sample = _sample(doc, body["schema"])
            for field in _string_paths(doc, sample, body["schema"]):
                cases.append(((method, path, "body", field), sample))
            if path.startswith("/v1/admin/channels"):  # free-form `data`
                cases.append(((method, path, "body", ("data",)), {"data": "x"}))
    return cases


CONTROL_TEXT = st.one_of(
    st.sampled_from(["\x00", "\u202e", "\u2066", "\x1b[2J", "\n", "\r\n", "\x7f", "\x9b",
                     "\u2028", "\ud7ff\x00"]),
    st.text(alphabet=st.characters(codec="utf-8", categories=["Cc", "Cf", "Zl", "Zp"]),
            min_size=1, max_size=4),
).flatmap(lambda bad: st.sampled_from([bad, f"a{bad}", f"{bad}@x.io", f"x{bad}y" * 3]))


async def test_no_control_character_in_any_string_field_reaches_a_5xx(
    client: httpx.AsyncClient, register: Register
) -> None:
    doc = (await client.get("/openapi.json")).json()
    cases = _cases(doc)
    assert len(cases) > 40  # every operation's string fields, not a handful
    accounts: list[Account] = [await register("admin"), await register("seller"),
                               await register("buyer")]
    outcomes: dict[int, int] = {}

    async def run(case: tuple[Case, Any], text: str, who: Account) -> None:
        (method, path, where, field), sample = case
        url = re.sub(r"\{[^}]+\}", lambda _: str(uuid.uuid4()), path)
        headers = {**who.headers, "Idempotency-Key": uuid.uuid4().hex}
        if where == "query":
            r = await client.request(method.upper(), url, params={field[0]: text},
                                     headers=headers)
        else:
            r = await client.request(method.upper(), url, json=_with(sample, field, text),
                                     headers=headers)
        outcomes[r.status_code] = outcomes.get(r.status_code, 0) + 1
        assert r.status_code < 500, (method, path, field, repr(text), r.text)

    # Hypothesis draws the examples (seeded: derandomize); they run on this test's loop.
    examples: list[tuple[tuple[Case, Any], str, Account]] = []

    @hypothesis_settings(max_examples=150, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(case=st.sampled_from(cases), text=CONTROL_TEXT, who=st.sampled_from(accounts))
    def collect(case: tuple[Case, Any], text: str, who: Account) -> None:
        examples.append((case, text, who))

    collect()
    # and every case at least once, with NUL
    examples += [(case, "a\x00b", accounts[0]) for case in cases]
    for case, text, who in examples:
        await run(case, text, who)
    assert outcomes.get(422, 0) > len(cases) // 2, outcomes
