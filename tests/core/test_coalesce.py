"""Coalescer: one batch per event-loop turn, results in order, errors to every caller."""

from __future__ import annotations

import asyncio

import pytest

from core.coalesce import Coalescer


async def test_one_turn_is_one_batch_and_results_keep_order() -> None:
    batches: list[list[int]] = []

    async def send(items: list[int]) -> list[int]:
        batches.append(items)
        return [i * 10 for i in items]

    c: Coalescer[int, int] = Coalescer(send)
    assert await asyncio.gather(*(c.call(i) for i in range(5))) == [0, 10, 20, 30, 40]
    assert await c.call(7) == 70
    assert batches == [[0, 1, 2, 3, 4], [7]]


async def test_max_batch_splits_a_burst() -> None:
    sizes: list[int] = []

    async def send(items: list[int]) -> list[int]:
        sizes.append(len(items))
        return items

    c: Coalescer[int, int] = Coalescer(send, max_batch=3)
    assert await asyncio.gather(*(c.call(i) for i in range(7))) == list(range(7))
    assert sizes == [3, 3, 1]


async def test_failure_reaches_every_caller_of_the_batch() -> None:
    async def send(items: list[int]) -> list[int]:
        raise ConnectionError("down")

    c: Coalescer[int, int] = Coalescer(send)
    results = await asyncio.gather(*(c.call(i) for i in range(3)), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    with pytest.raises(ConnectionError):
        await c.call(1)
