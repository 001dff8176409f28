"""Transactional outbox: a state change and the event describing it commit together.

Writers call `add_event(conn, ...)` inside the same transaction as the change. The relay reads
committed rows in id order and hands each to every registered handler (the real-time hub's
publisher, domain consumers such as "auction won → create order"). Delivery is at least once:
handlers must be idempotent (use the event id).

One relay is active per deployment at a time (a PostgreSQL advisory lock held on its own
connection elects it; if its process dies the lock is released and another takes over), which
keeps events in commit order. It wakes on `NOTIFY` sent at commit and also polls, so a lost
notification only delays an event by the poll interval.

A row whose handlers fail is retried with exponential backoff; after `max_attempts` it is marked
dead (`dead_at`), listed for operators, and can be replayed with `replay()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from core.db import DATABASE_ERRORS
from core.metrics import Metrics

log = logging.getLogger("souk.outbox")

NOTIFY_CHANNEL = "souk_outbox"


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    id: int
    topic: str
    channels: tuple[str, ...]
    payload: dict[str, Any]
    created_at: datetime


Handler = Callable[[OutboxEvent], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An event whose handlers failed every attempt."""

    event: OutboxEvent
    attempts: int
    last_error: str | None
    dead_at: datetime


async def add_event(
    conn: asyncpg.Connection,
    topic: str,
    payload: dict[str, Any],
    *,
    channels: Sequence[str] = (),
) -> int:
    """Record an event in the caller's transaction; it is published after commit. Returns its
    id. `channels` are the real-time channels the payload is published on (may be empty for
    events only domain consumers care about)."""
    event_id: int = await conn.fetchval(
        "INSERT INTO outbox (topic, channels, payload) VALUES ($1, $2, $3) RETURNING id",
        topic,
        list(channels),
        payload,
    )
    await conn.execute("SELECT pg_notify($1, '')", NOTIFY_CHANNEL)
    return event_id


async def replay(conn: asyncpg.Connection, event_id: int) -> bool:
    """Put a dead event back in the queue. Returns False if no dead event has that id."""
    result: str = await conn.execute(
        """UPDATE outbox SET dead_at = NULL, attempts = 0, next_attempt_at = now(),
                  last_error = NULL
           WHERE id = $1 AND dead_at IS NOT NULL""",
        event_id,
    )
    return result.endswith(" 1")


async def dead_letters(
    conn: asyncpg.Connection | asyncpg.Pool, *, before: int | None, limit: int
) -> list[DeadLetter]:
    """Up to `limit` dead events with ids below `before` (all when None), newest first."""
    rows = await conn.fetch(
        """SELECT id, topic, channels, payload, attempts, last_error, created_at, dead_at
           FROM outbox WHERE dead_at IS NOT NULL AND ($1::bigint IS NULL OR id < $1)
           ORDER BY id DESC LIMIT $2""",
        before, limit,
    )
    return [
        DeadLetter(OutboxEvent(r["id"], r["topic"], tuple(r["channels"]), r["payload"],
                               r["created_at"]),
                   r["attempts"], r["last_error"], r["dead_at"])
        for r in rows
    ]


def _honour_cancel() -> None:
    """Raise CancelledError if this task was asked to stop but carried on. On Python 3.11,
    `asyncio.wait_for` (asyncpg uses it inside `connect`) can swallow a cancellation that lands
    as its awaitable completes; the request then stays pending on the task (`cancelling()`),
    and a relay that was being shut down would otherwise keep running."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class OutboxRelay:
    """Publishes committed outbox rows to the registered handlers. Run `run()` as a task."""

    def __init__(
        self,
        dsn: str,
        pool: asyncpg.Pool,
        *,
        schema: str,
        metrics: Metrics,
        batch_size: int = 200,
        poll_interval_s: float = 1.0,
        max_attempts: int = 10,
        standby_interval_s: float = 2.0,
    ) -> None:
        self._dsn = dsn
        self._pool = pool
        self._schema = schema
        self._metrics = metrics
        self._batch = batch_size
        self._poll = poll_interval_s
        self._max_attempts = max_attempts
        self._standby = standby_interval_s
        self._handlers: list[Handler] = []
        self._wake = asyncio.Event()
        self.is_leader = False

    def add_handler(self, handler: Handler) -> None:
        """Register a handler called for every event, in id order. Register before `run()`."""
        self._handlers.append(handler)

    async def run(self) -> None:
        """Elect, listen and relay until cancelled. Reconnects after database errors."""
        while True:
            try:
                await self._lead()
            except asyncio.CancelledError:
                raise
            except DATABASE_ERRORS as exc:
                log.warning("outbox relay lost its connection", extra={"error": repr(exc)})
                await asyncio.sleep(self._standby)

    async def _lead(self) -> None:
        conn: asyncpg.Connection = await asyncpg.connect(self._dsn)
        try:
            _honour_cancel()
            lock_name = f"souk-outbox:{self._schema}"  # one leader per deployment (schema)
            while not await conn.fetchval(
                "SELECT pg_try_advisory_lock(hashtext($1))", lock_name
            ):
                self.is_leader = False
                await asyncio.sleep(self._standby)
                _honour_cancel()
            self.is_leader = True
            log.info("outbox relay is the leader")
            await conn.add_listener(NOTIFY_CHANNEL, self._on_notify)
            while True:
                _honour_cancel()
                while await self.relay_once() == self._batch:
                    pass
                self._wake.clear()
                try:
                    # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancellation
                    # that lands as the event is set (a NOTIFY at shutdown), and the relay
                    # would then never stop
                    async with asyncio.timeout(self._poll):
                        await self._wake.wait()
                except TimeoutError:
                    await conn.execute("SELECT 1")  # quiet: notice a dead connection promptly
        finally:
            self.is_leader = False
            with contextlib.suppress(Exception):
                await asyncio.shield(conn.close())

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def relay_once(self) -> int:
        """Publish one batch of due rows; returns how many rows were taken."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                """SELECT id, topic, channels, payload, created_at, attempts FROM outbox
                   WHERE published_at IS NULL AND dead_at IS NULL AND next_attempt_at <= now()
                   ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED""",
                self._batch,
            )
            done: list[int] = []
            for row in rows:
                event = OutboxEvent(
                    row["id"], row["topic"], tuple(row["channels"]), row["payload"],
                    row["created_at"],
                )
                error = await self._dispatch(event)
                if error is None:
                    done.append(event.id)
                    self._metrics.outbox_published.inc()
                    self._metrics.outbox_lag.observe(
                        max(0.0, time.time() - event.created_at.timestamp())
                    )
                else:
                    await self._fail(conn, event.id, row["attempts"] + 1, error)
            if done:
                await conn.execute(
                    "UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])", done
                )
            return len(rows)

    async def _dispatch(self, event: OutboxEvent) -> str | None:
        for handler in self._handlers:
            try:
                await handler(event)
            except Exception as exc:  # a handler's failure must not stop the relay
                self._metrics.outbox_failures.inc()
                log.exception("outbox handler failed", extra={"event_id": event.id})
                return repr(exc)[:500]
        return None

    async def _fail(
        self, conn: asyncpg.Connection, event_id: int, attempts: int, error: str
    ) -> None:
        backoff_s = min(300.0, 0.5 * 2**attempts)
        await conn.execute(
            """UPDATE outbox SET attempts = $2::int, last_error = $3,
                      next_attempt_at = now() + make_interval(secs => $4::float8),
                      dead_at = CASE WHEN $2::int >= $5::int THEN now() END
               WHERE id = $1""",
            event_id,
            attempts,
            error,
            backoff_s,
            self._max_attempts,
        )
