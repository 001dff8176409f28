"""Secrets never reach the logs (issue 17, finding 9): a full tour against a real server process
logging at DEBUG — register, a wrong password, login, refresh, a reused refresh token, payout
details, a top-up, a websocket sign-in, logout — and no token, password or bank detail appears
anywhere in what the process wrote."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from core.config import Settings
from tests.realtime.wsclient import WsClient
from tests.support.servers import ServerProcess
from tests.support.services import drop_isolation, make_settings

pytestmark = pytest.mark.integration

PASSWORD = "Tour-Password-0451"
KEY = base64.b64encode(b"t" * 32).decode()  # the payout-details encryption key
BANK = {"account_holder": "Nadia Tourist", "bank_name": "Bank of Tours",
        "account_number": "GB29 NWBK 6016 1331 9268 19", "routing_code": "NWBKGB2LXXX"}


@pytest.fixture
async def settings(key_dir: Path) -> AsyncIterator[Settings]:
    s = make_settings(key_dir, encryption_keys={"k1": KEY}, encryption_active_kid="k1",
                      metrics_token="metrics-secret-token-4242")
    yield s
    await drop_isolation(s)


def _fragments(secret: str) -> set[str]:
    """The secret and its distinctive parts (a JWT's signature, an IBAN without spaces)."""
    out = {secret, secret.replace(" ", "")}
    if secret.count(".") == 2:  # a JWT: its payload and signature alone are secrets too
        out |= set(secret.split(".")[1:])
    return {s for s in out if len(s) >= 8}


async def test_a_full_tour_logs_no_token_password_or_bank_detail(
    servers: Callable[..., ServerProcess]
) -> None:
    server = servers(LOG_LEVEL="DEBUG")
    secrets: set[str] = {PASSWORD, "wrong-password-77"}
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as c:
        r = await c.post("/v1/auth/register", json={
            "email": "tour@example.com", "password": PASSWORD, "display_name": "Tour",
            "role": "seller"})
        assert r.status_code == 201, r.text
        seller = r.json()
        r = await c.post("/v1/auth/register", json={
            "email": "buyer.tour@example.com", "password": PASSWORD, "display_name": "Buyer"})
        buyer = r.json()
        assert (await c.post("/v1/auth/login", json={"email": "tour@example.com",
                                                     "password": "wrong-password-77"})
                ).status_code == 401
        r = await c.post("/v1/auth/login", json={"email": "tour@example.com",
                                                 "password": PASSWORD})
        login = r.json()
        r = await c.post("/v1/auth/refresh", json={"refresh_token": login["refresh_token"]})
        rotated = r.json()
        r = await c.post("/v1/auth/refresh", json={"refresh_token": login["refresh_token"]})
        assert r.json()["code"] == "refresh_token_reused"
        auth = {"Authorization": f"Bearer {seller['access_token']}"}
        r = await c.put("/v1/seller/payout-details", json=BANK, headers=auth)
        assert r.status_code == 200, r.text
        assert (await c.get("/v1/seller/payout-details", headers=auth)).status_code == 200
        buyer_auth = {"Authorization": f"Bearer {buyer['access_token']}"}
        r = await c.post("/v1/wallet/topups", json={"amount": 5_000},
                         headers={**buyer_auth, "Idempotency-Key": "tour-topup-1"})
        assert r.status_code == 201, r.text
        ws = await WsClient.open(server.ws_url)
        assert "result" in await ws.call("auth", token=buyer["access_token"])
        await ws.close()
        r = await c.post("/v1/auth/logout", headers=buyer_auth,
                         json={"refresh_token": buyer["refresh_token"]})
        assert r.status_code == 204
        # a forged token is logged as refused, never echoed
        await c.get("/v1/me", headers={"Authorization": "Bearer forged.token.value-123456"})
    server.stop()  # flush everything
    for pair in (seller, buyer, login, rotated):
        secrets |= {pair["access_token"], pair["refresh_token"]}
    secrets |= {"forged.token.value-123456", KEY, "metrics-secret-token-4242"}
    secrets |= {BANK["account_number"], BANK["routing_code"], BANK["account_holder"],
                "60161331926819"}
    assert server.log_path is not None
    text = server.log_path.read_text()
    assert len(text.splitlines()) > 20, "the tour logged almost nothing: DEBUG not in effect?"
    leaked = sorted(f for s in secrets for f in _fragments(s) if f in text)
    assert leaked == [], [re.escape(x)[:24] for x in leaked]
