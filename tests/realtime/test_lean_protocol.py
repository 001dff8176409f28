"""The lighter receive queue and writable flag behave as the asyncio ones uvicorn expects."""

from __future__ import annotations

import asyncio

import pytest

from realtime.uvicorn_ws import Flag, LeanWebSocketsProtocol, ReceiveQueue


async def test_receive_queue_hands_items_over_in_order() -> None:
    q = ReceiveQueue()
    assert q.empty() and q.qsize() == 0
    q.put_nowait(1)
    q.put_nowait(2)
    assert (q.qsize(), await q.get(), await q.get(), q.empty()) == (2, 1, 2, True)
    getter = asyncio.ensure_future(q.get())
    await asyncio.sleep(0)
    q.put_nowait(3)  # straight to the waiting reader
    q.put_nowait(4)
    assert await getter == 3 and await q.get() == 4


async def test_a_cancelled_reader_loses_nothing() -> None:
    q = ReceiveQueue()
    getter = asyncio.ensure_future(q.get())
    await asyncio.sleep(0)
    getter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await getter
    q.put_nowait("kept")
    assert await q.get() == "kept"


async def test_one_reader_only() -> None:
    q = ReceiveQueue()
    first = asyncio.ensure_future(q.get())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError):
        await q.get()
    q.put_nowait(1)
    assert await first == 1


async def test_flag_wakes_every_waiter_and_can_be_cleared() -> None:
    flag = Flag(True)
    assert flag.is_set() and await flag.wait()
    flag.clear()
    waiters = [asyncio.ensure_future(flag.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    flag.set()
    assert await asyncio.gather(*waiters) == [True, True, True]


def test_the_lean_protocol_is_uvicorns_with_light_state() -> None:
    from uvicorn.config import Config
    from uvicorn.server import ServerState

    config = Config(app=lambda *a: None, ws=LeanWebSocketsProtocol)
    config.load()
    loop = asyncio.new_event_loop()
    try:
        proto = LeanWebSocketsProtocol(config, ServerState(), {}, _loop=loop)
    finally:
        loop.close()
    assert isinstance(proto.queue, ReceiveQueue) and isinstance(proto.writable, Flag)
    assert proto.writable.is_set()
