"""PostgreSQL access: the asyncpg pool, a transaction helper and the migrations runner.

Every connection's `search_path` is set to the configured schema, which is how tests isolate
themselves (one schema per test) and how a deployment can share a database.

Migrations are numbered SQL files (`0001_accounts.sql`) applied once each, in order, each in its
own transaction, recorded with a checksum in `schema_migrations`. A session-level advisory lock
serialises runners, so several processes starting at once apply each file exactly once; a file
whose content changed after it was applied is refused loudly.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import orjson

log = logging.getLogger("souk.db")

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_MIGRATION_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# Any constant works; it only has to be the same in every process.
_MIGRATION_LOCK_ID = 0x50_55_4B_00  # "SOUK"

# What a statement raises when the database, or the way to it, fails (not a bug of ours):
# background loops log these and try again.
DATABASE_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


def rows_affected(status: str) -> int:
    """The row count of a command's status (`"DELETE 3"` → 3), as `Connection.execute` returns."""
    return int(status.rsplit(" ", 1)[1])


class MigrationError(RuntimeError):
    """A migration file is malformed, duplicated, or changed after being applied."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migrations in `directory`, sorted by version. Raises `MigrationError` on bad names or
    duplicate versions."""
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _MIGRATION_RE.match(path.name)
        if match is None:
            raise MigrationError(f"migration file name must look like 0001_name.sql: {path.name}")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"two migrations share version {version}: {path.name}")
        found[version] = Migration(version, match.group(2), path.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


class SoukConnection(asyncpg.Connection):  # type: ignore[misc]  # asyncpg is untyped
    """A pooled connection that knows whether it may carry session state.

    asyncpg's pool resets every connection it takes back with one more round trip
    (`SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;`): 8 % of a checkout
    server's CPU, one round trip per request. The application leaves no session state on
    pooled connections except where it says so: session advisory locks (the auctions' single
    writer, `auctions/writes.py`) and LISTEN (`add_listener`, marked here by itself) call
    `keeps_session_state(conn)`, and only such connections get the reset on release
    (`_reset_if_needed`). `search_path` is a startup parameter, not a SET. Everything else is
    per transaction (`SET LOCAL`, `pg_advisory_xact_lock`, cursors). An open transaction is
    still rolled back on release by asyncpg itself (`Connection._reset`, which the pool runs
    before a custom `reset`). tests/core/test_pool_reset.py checks both asyncpg behaviours
    (fails loudly on an upgrade that changes them) and that no module takes session state
    without marking the connection."""

    __slots__ = ("_session_state",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._session_state = False

    def keep_session_state(self) -> None:
        self._session_state = True

    async def add_listener(self, channel: str, callback: Any) -> None:
        self._session_state = True  # LISTEN: the reset's UNLISTEN * is needed
        await super().add_listener(channel, callback)


def keeps_session_state(conn: asyncpg.Connection) -> None:
    """Say that `conn` now holds session state (a session advisory lock, a LISTEN, a session
    SET): if it is a pooled connection, the pool runs its full reset when it is released.
    Call it BEFORE the statement that creates the state (it may fail after creating it)."""
    mark = getattr(conn, "keep_session_state", None)  # through a pool's connection proxy too
    if mark is not None:
        mark()


async def _reset_if_needed(conn: asyncpg.Connection) -> None:
    """The pool's `reset` hook (after asyncpg's own rollback of an open transaction)."""
    if not isinstance(conn, SoukConnection) or conn._session_state:
        query = conn.get_reset_query()
        if query:
            await conn.execute(query)
        if isinstance(conn, SoukConnection):
            conn._session_state = False


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(
            typename, encoder=_json_dumps, decoder=_json_loads, schema="pg_catalog"
        )


def _json_dumps(value: object) -> str:
    return orjson.dumps(value).decode()


def _json_loads(value: str) -> object:
    return orjson.loads(value)


async def create_pool(
    dsn: str, *, schema: str = "public", min_size: int = 2, max_size: int = 20
) -> asyncpg.Pool:
    """Open a pool whose connections use `schema` and decode json/jsonb to Python values.
    The caller closes it (`close_pool`)."""

    # search_path is a startup parameter, not a SET: a session SET would outlive the request
    # (the pool resets only connections marked by `keeps_session_state`), and RESET ALL
    # resets to startup parameters.
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_reset_if_needed,
        connection_class=SoukConnection,
        command_timeout=60,
        server_settings={"search_path": f'"{schema}"'},
    )
    assert pool is not None  # asyncpg types it Optional; it is only None when not awaited
    return pool


async def close_pool(pool: asyncpg.Pool, *, within_s: float = 10.0) -> None:
    """Close `pool` gracefully, waiting for its connections to be released; after `within_s`
    (a connection still held by something that did not stop) terminate them instead, so that a
    process's shutdown always ends."""
    try:
        async with asyncio.timeout(within_s):
            await pool.close()
    except TimeoutError:
        log.warning("database pool not released in time: its connections are terminated",
                    extra={"within_s": within_s})
        pool.terminate()


@asynccontextmanager
async def transaction(
    pool: asyncpg.Pool, *, isolation: str = "read_committed"
) -> AsyncIterator[asyncpg.Connection]:
    """Acquire a connection and run the block in one transaction: commit on success, roll back
    on any exception (which propagates)."""
    async with pool.acquire() as conn, conn.transaction(isolation=isolation):
        yield conn


async def migrate(
    conn: asyncpg.Connection, *, schema: str = "public", directory: Path = MIGRATIONS_DIR
) -> list[int]:
    """Apply pending migrations into `schema` (created if missing). Returns the versions applied
    by this call. Safe to call from several processes at once."""
    migrations = load_migrations(directory)
    keeps_session_state(conn)  # the lock and the SET below, should `conn` be a pooled one
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK_ID)
    try:
        # Under the lock: CREATE SCHEMA IF NOT EXISTS itself races between sessions.
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute(f'SET search_path TO "{schema}"')
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY,
                   name text NOT NULL,
                   checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        rows = await conn.fetch("SELECT version, checksum FROM schema_migrations")
        applied = {r["version"]: r["checksum"] for r in rows}
        done: list[int] = []
        for m in migrations:
            if m.version in applied:
                if applied[m.version] != m.checksum:
                    raise MigrationError(
                        f"migration {m.version:04d}_{m.name} changed after it was applied; "
                        "add a new migration instead of editing an applied one"
                    )
                continue
            async with conn.transaction():
                await conn.execute(m.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    m.version,
                    m.name,
                    m.checksum,
                )
            log.info("migration applied", extra={"version": m.version, "migration": m.name})
            done.append(m.version)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK_ID)


async def migrate_dsn(dsn: str, *, schema: str = "public") -> list[int]:
    """Open one connection to `dsn`, apply pending migrations, close it."""
    conn = await asyncpg.connect(dsn)
    try:
        return await migrate(conn, schema=schema)
    finally:
        await conn.close()
