"""Login and registration limits (issue 17, finding 4): wrong passwords are counted per account
AND address (others cannot lock an owner out), under a much higher account-wide ceiling;
registrations are limited per address; X-Forwarded-For is believed only from TRUSTED_PROXIES."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from core.config import Settings
from tests.conftest import Register
from tests.support.servers import ServerProcess
from tests.support.services import drop_isolation, make_settings

PER_ADDRESS, CEILING = 3, 8


@pytest.fixture
async def settings(key_dir: Path) -> AsyncIterator[Settings]:
    s = make_settings(key_dir, login_failures_per_address=PER_ADDRESS,
                      login_rate_per_account=CEILING, register_rate_per_address=4)
    yield s
    await drop_isolation(s)


def _from(app: Starlette, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app.state.manager.app, client=(address, 1234))
    return httpx.AsyncClient(transport=transport, base_url="http://souk.test")


async def test_others_wrong_passwords_do_not_lock_the_owner_out(
    app: Starlette, client: httpx.AsyncClient, register: Register
) -> None:
    seller = await register("seller")
    wrong = {"email": seller.email, "password": "not the password"}
    for n in range(2):  # two attackers, each until refused
        async with _from(app, f"192.0.2.{n + 1}") as attacker:
            codes = [(await attacker.post("/v1/auth/login", json=wrong)).status_code
                     for _ in range(PER_ADDRESS + 1)]
            assert codes == [401] * PER_ADDRESS + [429]
            # refused before the password is checked, the right one included
            r = await attacker.post("/v1/auth/login",
                                    json={"email": seller.email, "password": seller.password})
            assert r.status_code == 429
    # The owner, from their own address, still signs in.
    r = await client.post("/v1/auth/login",
                          json={"email": seller.email, "password": seller.password})
    assert r.status_code == 200, r.text


async def test_the_account_wide_ceiling_still_stops_a_distributed_guess(
    app: Starlette, register: Register
) -> None:
    buyer = await register()
    wrong = {"email": buyer.email, "password": "not the password"}
    codes = []
    for n in range(CEILING + 1):  # each from its own address
        async with _from(app, f"198.51.100.{n + 1}") as guesser:
            codes.append((await guesser.post("/v1/auth/login", json=wrong)).status_code)
    assert codes == [401] * CEILING + [429]


async def test_registrations_are_limited_per_address(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    def body(n: int) -> dict[str, str]:
        return {"email": f"new{n}@example.com", "password": "correct horse battery",
                "display_name": f"New {n}"}

    codes = [(await client.post("/v1/auth/register", json=body(n))).status_code
             for n in range(5)]
    assert codes == [201] * 4 + [429]
    async with _from(app, "203.0.113.9") as elsewhere:
        assert (await elsewhere.post("/v1/auth/register", json=body(9))).status_code == 201


@pytest.mark.slow
async def test_x_forwarded_for_is_believed_only_from_trusted_proxies(
    settings: Settings, tmp_path: Path, register: Register
) -> None:
    """Through `python -m api serve`: by default a client cannot pick its bucket with
    X-Forwarded-For; with TRUSTED_PROXIES naming the peer, the forwarded address counts."""
    buyer = await register()
    wrong = {"email": buyer.email, "password": "not the password"}
    for trusted, expected in (("", [401] * PER_ADDRESS + [429]), ("127.0.0.1", [401] * 4)):
        env = {"LOGIN_FAILURES_PER_ADDRESS": str(PER_ADDRESS), "LOGIN_RATE_PER_ACCOUNT": "1000"}
        if trusted:
            env["TRUSTED_PROXIES"] = trusted
        server = ServerProcess(settings, extra_env=env, cli=True).start(log_dir=tmp_path)
        try:
            async with httpx.AsyncClient(base_url=server.url, timeout=10) as c:
                codes = [(await c.post("/v1/auth/login", json=wrong,
                                       headers={"X-Forwarded-For": f"192.0.2.{n + 10}"}))
                         .status_code for n in range(PER_ADDRESS + 1)]
        finally:
            server.stop()
        assert codes == expected, (trusted, codes)
        # next round: a fresh account bucket
        buyer = await register()
        wrong = {"email": buyer.email, "password": "not the password"}
