"""The pages and their files are served with the security headers; tokens never appear in them."""

from __future__ import annotations

import httpx
import pytest

from api.web.routes import CSP, PAGES, STATIC


@pytest.mark.parametrize("path", ["/", "/signin", "/shows/0b0f3c57-3f7a-4d39-9a55-1d1b1e0f0c11",
                                  "/orders/0b0f3c57-3f7a-4d39-9a55-1d1b1e0f0c11", "/admin",
                                  "/studio"])
async def test_pages_carry_a_strict_csp(client: httpx.AsyncClient, path: str) -> None:
    r = await client.get(path)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert csp == CSP
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers.get_list("x-content-type-options") == ["nosniff"]  # said once
    assert "<script>" not in r.text and " style=" not in r.text  # nothing inline


@pytest.mark.parametrize("path", ["/shows/not-a-uuid", "/orders/%C2%84",
                                  "/shows/0B0F3C573F7A4D399A551D1B1E0F0C11"])
async def test_a_page_whose_id_is_not_a_uuid_is_404(client: httpx.AsyncClient, path: str) -> None:
    r = await client.get(path)
    assert r.status_code == 404 and r.json()["code"] == "not_found"


async def test_static_files_carry_the_headers_and_unknown_ones_are_404(
    client: httpx.AsyncClient,
) -> None:
    r = await client.get("/static/common.js")
    assert r.status_code == 200
    assert "javascript" in r.headers["content-type"]
    assert r.headers["content-security-policy"] == CSP
    assert (await client.get("/static/nope.js")).status_code == 404
    assert (await client.get("/static/%2e%2e/routes.py")).status_code == 404  # no way out


def test_every_page_and_its_module_exist_and_no_script_puts_a_token_in_a_url() -> None:
    for name, _ in PAGES.values():
        html = (STATIC / name).read_text(encoding="utf-8")
        module = name.replace(".html", ".js")
        assert f'src="/static/{module}"' in html
        assert (STATIC / module).exists()
    for script in STATIC.glob("*.js"):
        text = script.read_text(encoding="utf-8")
        assert "?token=" not in text and "&token=" not in text, script.name
        assert "localStorage.setItem(\"souk.token" not in text, script.name
        assert "console.log" not in text, script.name
