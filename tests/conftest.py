"""Shared fixtures. See tests/support/ for how isolation and server processes work."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import settings as hypothesis_settings
from starlette.applications import Starlette

from api.app import create_app
from core.auth import generate_key
from core.config import Settings
from core.context import Runtime
from testkit import waiting
from testkit.servers import ServerProcess
from tests.support.lifespan import lifespan_state, started
from tests.support.private_redis import PrivateRedis
from tests.support.services import drop_isolation, make_settings

# Slow machines (CI on 2 cores) get proportionally more time; see ARCHITECTURE habit 12.
# Defined in testkit/waiting.py (with `eventually`/`wait_until`); importable from here.
TIMING_FACTOR = waiting.TIMING_FACTOR

hypothesis_settings.register_profile("ci", deadline=None, print_blob=True)
hypothesis_settings.register_profile("dev", deadline=None)
hypothesis_settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(scope="session")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("jwt")
    generate_key(directory, "test1")
    return directory


@pytest.fixture
async def settings(key_dir: Path) -> AsyncIterator[Settings]:
    """Settings with a fresh schema and Redis prefix; both are dropped after the test."""
    s = make_settings(key_dir)
    yield s
    await drop_isolation(s)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    application = create_app(settings)
    async with started(application) as manager:
        application.state.manager = manager
        yield application


@pytest.fixture
def rt(app: Starlette) -> Runtime:
    """The running app's Runtime (pool, redis, tokens...)."""
    runtime: Runtime = lifespan_state(app.state.manager)["runtime"]
    return runtime


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app.state.manager.app, client=("10.0.0.1", 1234))
    async with httpx.AsyncClient(transport=transport, base_url="http://souk.test") as c:
        yield c


@dataclass
class Account:
    id: str
    email: str
    password: str
    role: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


_counter = iter(range(1_000_000))

Register = Callable[..., Awaitable[Account]]


@pytest.fixture
def register(client: httpx.AsyncClient, rt: Runtime) -> Register:
    """`await register("seller")` → a signed-in Account. `role="admin"` creates one directly in
    the database (admins are never self-service) and signs it in."""

    async def make(role: str = "buyer", *, name: str | None = None) -> Account:
        n = next(_counter)
        email = f"{role}{n}@example.com"
        password = "correct horse battery staple"
        display = name or f"{role.title()} {n}"
        if role == "admin":
            from api.accounts import store
            from api.accounts.passwords import hash_password
            from core.auth import Role

            user = await store.create_user(
                rt.pool, email=email, email_normalized=email,
                password_hash=await hash_password(password), display_name=display,
                role=Role.ADMIN,
            )
            r = await client.post("/v1/auth/login", json={"email": email, "password": password})
            assert r.status_code == 200, r.text
            body: dict[str, Any] = r.json()
            return Account(str(user.id), email, password, role, body["access_token"],
                           body["refresh_token"])
        r = await client.post(
            "/v1/auth/register",
            json={"email": email, "password": password, "display_name": display, "role": role},
        )
        assert r.status_code == 201, r.text
        body = r.json()
        return Account(body["user"]["id"], email, password, role, body["access_token"],
                       body["refresh_token"])

    return make


@pytest.fixture
def servers(settings: Settings, tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Factory of real uvicorn processes sharing the test's schema and Redis prefix."""
    started: list[ServerProcess] = []

    def start(**extra_env: str) -> ServerProcess:
        proc = ServerProcess(settings, extra_env=dict(extra_env)).start(log_dir=tmp_path)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A Redis of this test's own, to restart, flush or kill (never the shared one)."""
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.kill()
