"""The crowd's start (tests/integration/auction_crowd.py): a client that fails before it fails
the run at once."""

from __future__ import annotations

import asyncio

import pytest

from tests.integration.auction_crowd import Crowd, all_arrived


async def test_the_start_comes_when_every_client_has_arrived() -> None:
    crowd = Crowd("a", [], clients=2)

    async def client() -> None:
        crowd.arrived()
        await crowd.start.wait()

    clients = [asyncio.create_task(client()) for _ in range(2)]
    await all_arrived(crowd, clients, timeout_s=5)
    assert crowd.start.is_set()
    await asyncio.gather(*clients)


async def test_a_client_that_fails_first_fails_the_run_at_once() -> None:
    crowd = Crowd("a", [], clients=2)

    async def refused() -> None:
        raise RuntimeError("subscribe refused")

    async def waiting() -> None:
        crowd.arrived()
        await crowd.start.wait()

    clients = [asyncio.create_task(refused()), asyncio.create_task(waiting())]
    with pytest.raises(AssertionError) as info:
        await all_arrived(crowd, clients, timeout_s=30)
    assert isinstance(info.value.__cause__, RuntimeError)
    clients[1].cancel()
