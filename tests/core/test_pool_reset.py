"""The pool skips asyncpg's reset round trip on release unless the connection keeps session state
(core/db.py `SoukConnection`). Real PostgreSQL; these also fence the asyncpg behaviours relied
on (an upgrade that changes them fails here, loudly) and that no module takes session state on
a pooled connection without saying so (`keeps_session_state`)."""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from core import db
from core.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_asyncpg_still_takes_a_reset_hook_and_a_connection_class() -> None:
    params = inspect.signature(asyncpg.create_pool).parameters
    assert "reset" in params and "connection_class" in params, (
        f"asyncpg {asyncpg.__version__} changed create_pool: core/db.py passes reset= and "
        "connection_class= to skip the reset round trip on release")
    assert callable(getattr(asyncpg.Connection, "get_reset_query", None)), (
        f"asyncpg {asyncpg.__version__}: Connection.get_reset_query is gone (core/db.py)")


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    p = await db.create_pool(settings.database_url, schema=settings.database_schema,
                             min_size=1, max_size=1)
    yield p
    try:
        async with asyncio.timeout(10):
            await p.close()
    except TimeoutError:  # a connection a failed test did not give back
        p.terminate()


async def test_a_plain_request_releases_without_a_round_trip(pool: asyncpg.Pool) -> None:
    seen: list[str] = []
    async with pool.acquire() as conn:
        assert isinstance(conn._con, db.SoukConnection)  # the proxy's target
        conn.add_query_logger(lambda record: seen.append(record.query))
    async with pool.acquire() as conn, conn.transaction():
        await conn.fetchval("SELECT 1")
    async with pool.acquire() as conn:
        await conn.fetchval("SELECT 2")
    assert seen == ["BEGIN;", "SELECT 1", "COMMIT;", "SELECT 2"], seen  # no reset query
    # proof that the reset really is skipped: unmarked session state survives a release (the
    # application never leaves any: see test_no_module_takes_session_state_unmarked)
    async with pool.acquire() as conn:
        await conn.execute("SET application_name = 'left behind'")
    async with pool.acquire() as conn:
        assert await conn.fetchval("SHOW application_name") == "left behind"


async def test_an_open_transaction_is_still_rolled_back_on_release(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        name = await conn.fetchval("SHOW application_name")
        tx = conn.transaction()  # unmanaged: left open by the caller
        await tx.start()
        await conn.execute("SET LOCAL application_name = 'inside'")
    async with pool.acquire() as conn:  # asyncpg's own Connection._reset rolled it back
        assert not conn.is_in_transaction(), (
            f"asyncpg {asyncpg.__version__} no longer rolls back an open transaction before a "
            "custom reset: core/db.py `_reset_if_needed` must do it")
        assert await conn.fetchval("SHOW application_name") == name


async def _advisory_locks(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"))


async def test_a_session_advisory_lock_is_released_with_the_connection(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        db.keeps_session_state(conn)
        await conn.execute("SELECT pg_advisory_lock(4242)")
        await conn.execute("SET application_name = 'marked'")
        assert await _advisory_locks(conn) == 1
    async with pool.acquire() as conn:
        assert await _advisory_locks(conn) == 0
        assert await conn.fetchval("SHOW application_name") != "marked"  # RESET ALL ran
        seen: list[str] = []
        conn.add_query_logger(lambda record: seen.append(record.query))
    async with pool.acquire() as conn:  # the mark is gone after the reset
        await conn.fetchval("SELECT 3")
    assert seen == ["SELECT 3"], seen


async def test_a_listen_is_undone_with_the_connection(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        db.keeps_session_state(conn)
        await conn.execute("LISTEN souk_test_channel")
        assert await conn.fetch("SELECT pg_listening_channels()")
    async with pool.acquire() as conn:
        assert await conn.fetch("SELECT pg_listening_channels()") == []
        await conn.add_listener("souk_test_channel", _ignore)  # marks the connection by itself
        assert conn._con._session_state  # the proxy's target
        await conn.remove_listener("souk_test_channel", _ignore)


def _ignore(*_: object) -> None:
    return None


# Source that can leave session state on a connection, and why each place is safe.
_SESSION_STATE = re.compile(
    r"pg_advisory_lock\(|pg_try_advisory_lock\(|\bLISTEN\b|add_listener|"
    r"set_config\([^)]*,\s*false\)|[\"']SET (?!LOCAL)|SET SESSION|\bPREPARE\b|WITH HOLD|"
    r"\bTEMP(ORARY)? TABLE",  # SQL is written in capitals here
)
_ALLOWED = {
    "core/db.py": "migrate(): keeps_session_state(conn) first; SoukConnection marks LISTEN",
    "core/outbox.py": "the relay's own connection (asyncpg.connect), never pooled",
    "auctions/writes.py": "advisory_lock / lock_and_read: keeps_session_state(conn) first",
    "auctions/sequencer.py": "docstring: the lock is taken by writes.lock_and_read",
    "migrations/0302_auction_lock_and_read.sql": "called only by auctions/writes.lock_and_read",
}
_SKIP_DIRS = {"tests", "loadtests", "testkit", "docs", ".venv", "node_modules", ".git"}


def test_no_module_takes_session_state_unmarked() -> None:
    found: dict[str, list[str]] = {}
    for path in [*ROOT.rglob("*.py"), *(ROOT / "migrations").glob("*.sql")]:
        rel = path.relative_to(ROOT)
        if _SKIP_DIRS & set(rel.parts[:-1]):
            continue
        text = path.read_text(encoding="utf-8")
        hits = [m.group(0) for m in _SESSION_STATE.finditer(text)]
        if hits:
            found[rel.as_posix()] = hits
    unexpected = {k: v for k, v in found.items() if k not in _ALLOWED}
    assert not unexpected, (
        f"{unexpected}: session state on a pooled connection outlives the request now that "
        "the pool skips its reset (core/db.py): call db.keeps_session_state(conn) before the "
        "statement, then list the file in _ALLOWED with the reason")
    for rel in ("auctions/writes.py", "core/db.py"):
        assert "keeps_session_state(conn)" in (ROOT / rel).read_text(encoding="utf-8"), rel
    callers = [p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*.py")
               if not _SKIP_DIRS & set(p.relative_to(ROOT).parts[:-1])
               and "auction_lock_and_read(" in p.read_text(encoding="utf-8")]
    assert callers == ["auctions/writes.py"], callers
