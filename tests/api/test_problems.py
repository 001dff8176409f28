"""Every failure is RFC 9457 problem+json with a stable code, in the caller's language."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette

from core.context import Runtime
from tests.conftest import Register

PROBLEM_KEYS = {"type", "title", "status", "detail", "code"}


def assert_problem(r: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = r.json()
    assert set(body) >= PROBLEM_KEYS
    assert body["status"] == status
    assert body["code"] == code
    return body


async def test_not_found_and_method_not_allowed(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/v1/nothing-here"), 404, "not_found")
    r = await client.get("/v1/auth/login")
    assert_problem(r, 405, "method_not_allowed")
    assert "POST" in r.headers["allow"]


async def test_malformed_json(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/auth/login", content=b'{"email": ', headers={"content-type": "application/json"}
    )
    assert_problem(r, 400, "malformed_body")


async def test_wrong_content_type(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/auth/login",
        content=b"email=a",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert_problem(r, 415, "unsupported_media_type")


async def test_oversize_body_is_413(client: httpx.AsyncClient, rt: Runtime) -> None:
    limit = rt.settings.max_body_bytes
    big = b'{"email": "' + b"a" * limit + b'"}'
    r = await client.post(
        "/v1/auth/login", content=big, headers={"content-type": "application/json"}
    )
    body = assert_problem(r, 413, "payload_too_large")
    assert str(limit) in str(body["detail"])


async def test_oversize_body_without_content_length_is_413(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(rt.settings.max_body_bytes // 65536 + 2):
            yield b"x" * 65536

    r = await client.post(
        "/v1/auth/login", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_problem(r, 413, "payload_too_large")


async def test_unknown_fields_and_wrong_types(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/auth/login", json={"email": "a@b.cd", "password": "x", "admin": True}
    )
    body = assert_problem(r, 422, "validation_failed")
    assert body["errors"] == [{"field": "admin", "message": "unknown field"}]
    r = await client.post("/v1/auth/login", json={"email": 5, "password": "x"})
    body = assert_problem(r, 422, "validation_failed")
    assert body["errors"][0]["field"] == "email"  # type: ignore[index]
    r = await client.post("/v1/auth/login", json={"password": "x"})
    body = assert_problem(r, 422, "validation_failed")
    assert body["errors"] == [{"field": "email", "message": "required"}]
    r = await client.post("/v1/auth/login", json=[1, 2])
    assert_problem(r, 422, "validation_failed")


async def test_arabic_titles(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/nothing", headers={"accept-language": "ar-EG,ar;q=0.9,en;q=0.5"})
    body = assert_problem(r, 404, "not_found")
    assert body["title"] == "غير موجود"
    assert r.headers["content-language"] == "ar"
    r = await client.get("/v1/nothing", headers={"accept-language": "fr, en;q=0.1"})
    assert assert_problem(r, 404, "not_found")["title"] == "Not found"


async def test_auth_problems(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/v1/me"), 401, "unauthorized")
    r = await client.get("/v1/me", headers={"authorization": "Bearer not.a.jwt"})
    assert_problem(r, 401, "token_invalid")
    r = await client.get("/v1/me", headers={"authorization": "Basic Zm9vOmJhcg=="})
    assert_problem(r, 401, "unauthorized")


async def test_unhandled_error_is_500_without_internals(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    from starlette.routing import Route

    async def boom(request: object) -> None:
        raise RuntimeError("secret internal detail: password=hunter2")

    app.router.routes.append(Route("/boom", boom))
    r = await client.get("/boom")
    body = assert_problem(r, 500, "internal_error")
    assert "hunter2" not in r.text
    assert "RuntimeError" not in r.text
    assert body["detail"] == "The server could not complete the request."
    assert r.headers["x-request-id"]


async def test_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    r = await client.get("/healthz", headers={"x-request-id": "abc-123-def-456"})
    assert r.headers["x-request-id"] == "abc-123-def-456"
    r = await client.get("/healthz", headers={"x-request-id": "bad id with spaces"})
    assert r.headers["x-request-id"] != "bad id with spaces"


@pytest.mark.parametrize("role", ["buyer", "seller", "rider"])
async def test_admin_routes_refuse_other_roles(
    client: httpx.AsyncClient, register: Register, role: str
) -> None:
    user = await register(role)
    assert_problem(await client.get("/v1/admin/users", headers=user.headers), 403, "forbidden")
    r = await client.post(
        f"/v1/admin/users/{user.id}/suspend", headers=user.headers, json={"reason": "trying"}
    )
    assert_problem(r, 403, "forbidden")
