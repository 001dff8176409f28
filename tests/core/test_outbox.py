"""The outbox relay on the real database: order, retries, dead letters, leadership."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest

from core.config import Settings
from core.db import create_pool, migrate_dsn
from core.metrics import Metrics
from core.outbox import OutboxEvent, OutboxRelay, add_event, dead_letters, replay
from testkit.waiting import eventually
from tests.conftest import TIMING_FACTOR


@dataclass
class Db:
    """A migrated schema with no app (and so no app relay competing for leadership)."""

    settings: Settings
    pool: asyncpg.Pool


@pytest.fixture
async def rt(settings: Settings) -> AsyncIterator[Db]:
    await migrate_dsn(settings.database_url, schema=settings.database_schema)
    pool = await create_pool(settings.database_url, schema=settings.database_schema, min_size=1)
    yield Db(settings, pool)
    await pool.close()


def make_relay(rt: Db, **kw: object) -> OutboxRelay:
    return OutboxRelay(
        rt.settings.database_url,
        rt.pool,
        schema=rt.settings.database_schema,
        metrics=Metrics(),
        **kw,
    )  # type: ignore[arg-type]


async def wait_for(predicate, limit_s: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    await eventually(predicate, limit_s)


async def test_committed_events_only_in_order(rt: Db) -> None:
    relay = make_relay(rt, poll_interval_s=0.2)
    seen: list[OutboxEvent] = []

    async def handler(event: OutboxEvent) -> None:
        seen.append(event)

    relay.add_handler(handler)
    task = asyncio.create_task(relay.run())
    try:
        async with rt.pool.acquire() as conn:
            for i in range(5):
                async with conn.transaction():
                    await add_event(conn, "test.happened", {"i": i}, channels=["user:1"])
            tx = conn.transaction()
            await tx.start()
            await add_event(conn, "test.rolled_back", {"i": 99})
            await tx.rollback()
        await wait_for(lambda: len(seen) >= 5)
        await asyncio.sleep(0.3 * TIMING_FACTOR)  # time for a duplicate to show up, if any
        assert [e.payload["i"] for e in seen] == [0, 1, 2, 3, 4]
        assert all(e.channels == ("user:1",) for e in seen)
        pending = await rt.pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        assert pending == 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_failing_handler_retries_then_dead_letters_and_replays(rt: Db) -> None:
    relay = make_relay(rt, poll_interval_s=0.05, max_attempts=2)
    calls: list[int] = []
    healthy = False

    async def handler(event: OutboxEvent) -> None:
        calls.append(event.id)
        if not healthy:
            raise ConnectionError("downstream is down")

    relay.add_handler(handler)
    async with rt.pool.acquire() as conn, conn.transaction():
        event_id = await add_event(conn, "test.flaky", {})
    # Drive the relay by hand so backoff timing is under test control.
    assert await relay.relay_once() == 1
    await rt.pool.execute("UPDATE outbox SET next_attempt_at = now()")
    assert await relay.relay_once() == 1
    row = await rt.pool.fetchrow("SELECT attempts, dead_at, last_error FROM outbox")
    assert row["attempts"] == 2 and row["dead_at"] is not None
    assert "downstream is down" in row["last_error"]
    assert await relay.relay_once() == 0  # dead rows are not retried
    healthy = True
    async with rt.pool.acquire() as conn:
        assert await replay(conn, event_id) is True
        assert await replay(conn, event_id) is False
    assert await relay.relay_once() == 1
    assert await rt.pool.fetchval("SELECT published_at IS NOT NULL FROM outbox") is True
    assert calls == [event_id] * 3


async def test_dead_letters_page_newest_first_below_the_cursor(rt: Db) -> None:
    ids = [await rt.pool.fetchval(
        """INSERT INTO outbox (topic, channels, payload, attempts, last_error, dead_at)
           VALUES ($1, '{}', '{}'::jsonb, 10, 'boom', CASE WHEN $2 THEN now() END)
           RETURNING id""", f"t{i}", i != 1) for i in range(4)]
    dead = [i for n, i in enumerate(ids) if n != 1]  # the second row is still live
    first = await dead_letters(rt.pool, before=None, limit=2)
    assert [d.event.id for d in first] == [dead[2], dead[1]]
    assert (first[0].event.topic, first[0].attempts, first[0].last_error) == ("t3", 10, "boom")
    assert first[0].dead_at >= first[0].event.created_at
    rest = await dead_letters(rt.pool, before=first[-1].event.id, limit=2)
    assert [d.event.id for d in rest] == [dead[0]]


async def test_one_leader_at_a_time(rt: Db) -> None:
    a, b = make_relay(rt, standby_interval_s=0.1), make_relay(rt, standby_interval_s=0.1)
    ta = asyncio.create_task(a.run())
    await wait_for(lambda: a.is_leader)
    tb = asyncio.create_task(b.run())
    await asyncio.sleep(0.4 * TIMING_FACTOR)  # four standby intervals: it tried, and stayed out
    assert not b.is_leader
    ta.cancel()
    await asyncio.gather(ta, return_exceptions=True)
    await wait_for(lambda: b.is_leader)  # the standby takes over when the leader goes
    tb.cancel()
    await asyncio.gather(tb, return_exceptions=True)


async def test_a_swallowed_cancellation_is_still_honoured() -> None:
    """Python 3.11's wait_for (inside asyncpg.connect) can swallow a cancellation; the relay
    checks the task's pending cancel requests at each step, so shutdown still stops it."""
    import asyncio
    import contextlib

    from core.outbox import _honour_cancel

    reached = []

    async def body() -> None:
        with contextlib.suppress(asyncio.CancelledError):  # swallowed, as wait_for can
            await asyncio.sleep(10)
        _honour_cancel()
        reached.append("past the check")
        await asyncio.sleep(10)

    task = asyncio.create_task(body())
    await asyncio.sleep(0)
    task.cancel()
    async with asyncio.timeout(1):
        with pytest.raises(asyncio.CancelledError):
            await task
    assert reached == []
