"""Coalescer: one batch per event-loop turn (or per round trip with `max_in_flight`), results in
order, errors to every caller."""

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


async def test_with_one_batch_in_flight_calls_made_meanwhile_go_together() -> None:
    batches: list[list[int]] = []
    gate, sent = asyncio.Event(), asyncio.Event()

    async def send(items: list[int]) -> list[int]:
        batches.append(items)
        sent.set()
        await gate.wait()
        return items

    c: Coalescer[int, int] = Coalescer(send, max_in_flight=1)
    first = asyncio.ensure_future(c.call(0))
    await sent.wait()  # the first batch is on its way
    later = [asyncio.ensure_future(c.call(i)) for i in (1, 2)]
    await asyncio.sleep(0)
    also = asyncio.ensure_future(c.call(3))  # another turn: still waits for the first
    for _ in range(5):  # several loop turns: nothing else is sent while the first is out
        await asyncio.sleep(0)
    assert batches == [[0]]
    gate.set()
    assert await asyncio.gather(first, *later, also) == [0, 1, 2, 3]
    assert batches == [[0], [1, 2, 3]]
    assert await c.call(4) == 4  # nothing in flight: at the end of its turn
    assert batches[-1] == [4]


async def test_a_failed_batch_in_flight_lets_the_waiting_ones_go() -> None:
    calls: list[list[int]] = []

    async def send(items: list[int]) -> list[int]:
        calls.append(items)
        await asyncio.sleep(0.01)
        if items == [0]:
            raise ConnectionError("down")
        return items

    c: Coalescer[int, int] = Coalescer(send, max_in_flight=1)
    first = asyncio.ensure_future(c.call(0))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    second = asyncio.ensure_future(c.call(1))
    assert isinstance((await asyncio.gather(first, return_exceptions=True))[0], ConnectionError)
    assert await second == 1
    assert calls == [[0], [1]]
