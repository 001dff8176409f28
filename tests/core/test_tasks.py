"""Stopping background tasks: a swallowed cancellation cannot hang a shutdown (core/tasks.py),
and a pool with a connection still held closes within its bound (core/db.close_pool)."""

from __future__ import annotations

import asyncio
import logging
import sys
import time

import asyncpg
import pytest

from core.config import Settings
from core.db import close_pool, create_pool
from core.tasks import report_if_stuck, stop
from testkit.waiting import eventually


async def test_python_3_11_wait_for_swallows_a_cancellation_landing_as_it_completes() -> None:
    """Why core/tasks.py exists; on 3.12+ the cancellation is kept (and stop() costs nothing)."""
    fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(asyncio.wait_for(fut, 10))
    await asyncio.sleep(0)  # the task now waits on fut
    fut.set_result(1)
    task.cancel()  # lands before wait_for has seen the result
    if sys.version_info < (3, 12):
        assert await task == 1  # the cancellation is gone
    else:
        with pytest.raises(asyncio.CancelledError):
            await task


def _stubborn(times: int) -> tuple[asyncio.Task[None], list[int]]:
    """A looping task that carries on after its first `times` cancellations, as a loop around
    a call that swallowed them would."""
    swallowed = [0]

    async def loop() -> None:
        while True:
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                if swallowed[0] >= times:
                    raise
                swallowed[0] += 1

    return asyncio.create_task(loop(), name=f"stubborn-{times}"), swallowed


async def test_a_task_that_swallowed_one_cancellation_is_cancelled_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    task, swallowed = _stubborn(1)
    await asyncio.sleep(0.02)
    task.cancel()  # the old way: cancel once and wait
    done, _ = await asyncio.wait({task}, timeout=0.3)
    assert not done and swallowed == [1]  # it would never end
    task2, swallowed2 = _stubborn(1)
    await asyncio.sleep(0.02)
    with caplog.at_level(logging.WARNING, logger="souk.tasks"):
        began = time.monotonic()
        assert await stop(task2, grace_s=0.2) == []
    assert task2.cancelled() and swallowed2 == [1]
    assert time.monotonic() - began < 2
    warned = [r for r in caplog.records if r.getMessage().startswith("background task ignored")]
    assert [r.__dict__["task"] for r in warned] == ["stubborn-1"]
    assert "loop" in warned[0].__dict__["stack"]
    assert await stop(task, grace_s=0.2) == [] and task.cancelled()


async def test_a_task_that_never_stops_is_left_behind_within_the_bound(
    caplog: pytest.LogCaptureFixture,
) -> None:
    task, swallowed = _stubborn(1000)
    await asyncio.sleep(0.02)
    with caplog.at_level(logging.WARNING, logger="souk.tasks"):
        began = time.monotonic()
        left = await stop(task, grace_s=0.05, attempts=3)
    assert left == [task] and swallowed == [3]
    assert time.monotonic() - began < 1.5
    assert any(r.getMessage() == "background task left running at shutdown"
               for r in caplog.records)
    swallowed[0] = 1000  # let the next cancellation through
    assert await stop(task, grace_s=0.5) == [] and task.cancelled()


async def test_a_task_asked_to_stop_may_finish_by_itself_first() -> None:
    stopping = asyncio.Event()

    async def winds_down() -> str:
        await stopping.wait()
        await asyncio.sleep(0.05)
        return "flushed"

    polite = asyncio.create_task(winds_down())
    deaf = asyncio.create_task(asyncio.sleep(10))
    stopping.set()
    began = time.monotonic()
    assert await stop(polite, deaf, finish_within_s=0.5) == []
    assert polite.result() == "flushed"  # ended by itself: not cancelled
    assert deaf.cancelled()  # cancelled once the window passed
    assert 0.5 <= time.monotonic() - began < 2


async def test_what_a_task_raised_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    async def fail() -> None:
        raise RuntimeError("boom")

    failed = asyncio.create_task(fail(), name="failing")
    quick = asyncio.create_task(asyncio.sleep(10), name="sleeping")
    await asyncio.sleep(0.01)
    with caplog.at_level(logging.ERROR, logger="souk.tasks"):
        assert await stop(failed, quick) == []
    assert quick.cancelled()
    [record] = [r for r in caplog.records if r.getMessage() == "background task had failed"]
    assert record.__dict__["task"] == "failing" and record.exc_info is not None


async def test_a_stuck_shutdown_names_its_pending_tasks(caplog: pytest.LogCaptureFixture) -> None:
    held = asyncio.create_task(asyncio.sleep(10), name="holding-the-shutdown")
    with caplog.at_level(logging.WARNING, logger="souk.tasks"):
        await report_if_stuck(0.05, "shutdown")
    [record] = [r for r in caplog.records if r.getMessage() == "shutdown still running after 0.05 s"]
    tasks = record.__dict__["tasks"]
    assert "holding-the-shutdown" in tasks and "sleep" in tasks["holding-the-shutdown"]
    await stop(held)


async def _gone(conn: asyncpg.Connection, pid: int) -> bool:
    return not await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid)


async def test_a_pool_with_a_held_connection_closes_within_its_bound(
    settings: Settings, caplog: pytest.LogCaptureFixture,
) -> None:
    pool = await create_pool(settings.database_url, schema="public", min_size=1, max_size=2)
    conn = await pool.acquire()  # never released, as by a task that did not stop
    pid = conn.get_server_pid()
    with caplog.at_level(logging.WARNING, logger="souk.db"):
        began = time.monotonic()
        await close_pool(pool, within_s=0.3)
    assert time.monotonic() - began < 3
    other = await asyncpg.connect(settings.database_url)
    try:
        await eventually(lambda: _gone(other, pid), what="the held backend ended")
    finally:
        await other.close()
    assert any(r.getMessage().startswith("database pool not released") for r in caplog.records)


async def test_a_released_pool_closes_gracefully(
    settings: Settings, caplog: pytest.LogCaptureFixture,
) -> None:
    pool = await create_pool(settings.database_url, schema="public", min_size=1, max_size=2)
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT 1") == 1
    with caplog.at_level(logging.WARNING, logger="souk.db"):
        await close_pool(pool, within_s=5)
    assert not caplog.records
