"""asgi-lifespan's private state, read by tests/support/lifespan.py, on the installed version."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from asgi_lifespan import LifespanManager
from starlette.applications import Starlette

from tests.support.lifespan import RELIED_ON, lifespan_state


async def test_the_lifespan_state_is_where_the_tests_read_it() -> None:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        yield {"runtime": "the runtime"}

    manager = LifespanManager(Starlette(lifespan=lifespan))
    missing = [name for name in RELIED_ON if not hasattr(manager, name)]
    assert missing == [], f"asgi-lifespan changed: {missing}"
    async with manager:
        assert lifespan_state(manager) == {"runtime": "the runtime"}
