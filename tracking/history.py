"""Position history in PostgreSQL: written in batches (one COPY per batch, never one INSERT per
fix), partitioned by UTC day so that retention drops whole partitions.

`HistoryWriter.add()` only appends to an in-memory buffer; `run()` flushes it every
`interval_s` or as soon as `batch_rows` are waiting. A failed batch stays in the buffer and is
retried (the buffer is bounded: past `max_rows` the oldest fixes are dropped and counted, so a
long database outage cannot exhaust memory). A batch that names a day without a partition
creates the partition and is written again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from collections import deque
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

import asyncpg

from core.db import DATABASE_ERRORS
from tracking.metrics import TrackingMetrics
from tracking.model import Fix

log = logging.getLogger("souk.tracking.history")

TABLE = "tracking_positions"
COLUMNS = ("rider_id", "ts", "lat", "lon", "speed", "heading", "accuracy", "altitude",
           "received_at")
_PARTITION_RE = re.compile(rf"^{TABLE}_(\d{{8}})$")
Row = tuple[uuid.UUID, datetime, float, float, float | None, float | None, float | None,
            float | None, datetime]


def partition_name(day: date) -> str:
    return f"{TABLE}_{day:%Y%m%d}"


def day_of(ts: datetime) -> date:
    return ts.astimezone(UTC).date()


async def ensure_partitions(conn: asyncpg.Connection, days: Iterable[date]) -> None:
    """Create the day partitions that do not exist yet (safe against concurrent creators)."""
    for day in sorted(set(days)):
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        with contextlib.suppress(asyncpg.DuplicateTableError, asyncpg.UniqueViolationError):
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {partition_name(day)} PARTITION OF {TABLE} "
                f"FOR VALUES FROM ('{start.isoformat()}') "
                f"TO ('{(start + timedelta(days=1)).isoformat()}')")


async def partitions(conn: asyncpg.Connection | asyncpg.Pool) -> list[date]:
    rows = await conn.fetch(
        """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
           WHERE i.inhparent = $1::regclass""", TABLE)
    out = []
    for r in rows:
        match = _PARTITION_RE.match(r["relname"])
        if match:
            out.append(datetime.strptime(match.group(1), "%Y%m%d").replace(tzinfo=UTC).date())
    return sorted(out)


async def drop_older_than(conn: asyncpg.Connection, keep_from: date) -> list[date]:
    """Drop every day partition before `keep_from` (retention). Returns the days dropped."""
    dropped = []
    for day in await partitions(conn):
        if day < keep_from:
            await conn.execute(f"DROP TABLE IF EXISTS {partition_name(day)}")
            dropped.append(day)
    return dropped


async def track(conn: asyncpg.Connection | asyncpg.Pool, rider_id: uuid.UUID, *,
                since: datetime, until: datetime | None, limit: int) -> list[asyncpg.Record]:
    """A rider's positions between `since` and `until` (device time), oldest first."""
    rows: list[asyncpg.Record] = await conn.fetch(
        f"""SELECT ts, lat, lon, speed, heading, accuracy FROM {TABLE}
            WHERE rider_id = $1 AND ts >= $2 AND ($3::timestamptz IS NULL OR ts <= $3)
            ORDER BY ts LIMIT $4""", rider_id, since, until, limit)
    return rows


def row_of(rider_id: uuid.UUID, fix: Fix, received_ms: int) -> Row:
    return (rider_id, datetime.fromtimestamp(fix.ts_ms / 1000, UTC), fix.lat, fix.lon,
            fix.speed_mps, fix.heading, fix.accuracy_m, fix.altitude_m,
            datetime.fromtimestamp(received_ms / 1000, UTC))


class HistoryWriter:
    def __init__(self, pool: asyncpg.Pool, metrics: TrackingMetrics, *, interval_s: float,
                 batch_rows: int, max_rows: int) -> None:
        self.pool = pool
        self.metrics = metrics
        self.interval_s = interval_s
        self.batch_rows = batch_rows
        self.max_rows = max_rows
        self._rows: deque[Row] = deque()
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()

    @property
    def pending(self) -> int:
        return len(self._rows)

    def add(self, row: Row) -> None:
        if len(self._rows) >= self.max_rows:
            self._rows.popleft()
            self.metrics.history_lost.inc()
        self._rows.append(row)
        if len(self._rows) >= self.batch_rows:
            self._wake.set()

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval_s):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
            except DATABASE_ERRORS as exc:
                log.warning("history flush failed; kept for retry", extra={"error": repr(exc)})
                await asyncio.sleep(self.interval_s)

    async def flush(self) -> int:
        """Write everything buffered now, a batch at a time. Returns the rows written."""
        written = 0
        async with self._lock:
            while self._rows:
                batch = [self._rows[i] for i in range(min(self.batch_rows, len(self._rows)))]
                try:
                    await self._write(batch)
                except DATABASE_ERRORS:
                    self.metrics.history_failures.inc()
                    raise
                for _ in batch:
                    self._rows.popleft()
                written += len(batch)
                self.metrics.history_rows.inc(len(batch))
                self.metrics.history_batches.inc()
        return written

    async def _write(self, batch: list[Row]) -> None:
        async with self.pool.acquire() as conn:
            try:
                await conn.copy_records_to_table(TABLE, records=batch, columns=COLUMNS)
            except asyncpg.CheckViolationError:  # "no partition of relation found for row"
                await ensure_partitions(conn, {day_of(r[1]) for r in batch})
                await conn.copy_records_to_table(TABLE, records=batch, columns=COLUMNS)
