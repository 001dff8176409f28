"""Fixtures for the live-video tests: server processes that gather ICE on loopback only."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from core.config import Settings
from tests.conftest import TIMING_FACTOR, Account, Register
from tests.support.servers import ServerProcess
from tests.support.services import drop_isolation, make_settings

LOOPBACK = {"WEBRTC_HOST_ADDRESSES": "127.0.0.1"}


@pytest.fixture
async def settings(key_dir: Path) -> AsyncIterator[Settings]:
    """The in-process app of these tests: a short grace, small viewer limits."""
    s = make_settings(key_dir, show_publisher_grace_s=3.0 * TIMING_FACTOR, streaming_max_viewers_per_show=4,
                      streaming_connect_timeout_s=5.0 * TIMING_FACTOR,
                      streaming_media_timeout_s=3.0 * TIMING_FACTOR)
    yield s
    await drop_isolation(s)


@pytest.fixture
def stream_server(servers: Callable[..., ServerProcess]) -> Callable[..., ServerProcess]:
    def start(**env: str) -> ServerProcess:
        return servers(**{**LOOPBACK, **env})

    return start


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=20) as client:
        yield client


@pytest.fixture
async def seller(register: Register) -> Account:
    return await register("seller")


@pytest.fixture
async def show_id(client: httpx.AsyncClient, seller: Account) -> str:
    r = await client.post("/v1/shows", json={"title": "Live"}, headers=seller.headers)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])
