"""The migrations runner against the real database."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from core.config import Settings
from core.db import MigrationError, load_migrations, migrate


async def _connect(settings: Settings) -> asyncpg.Connection:
    return await asyncpg.connect(settings.database_url)


def write(directory: Path, name: str, sql: str) -> None:
    (directory / name).write_text(sql)


async def test_applies_in_order_once(settings: Settings, tmp_path: Path) -> None:
    write(tmp_path, "0002_b.sql", "INSERT INTO t VALUES (2);")
    write(tmp_path, "0001_a.sql", "CREATE TABLE t (v int); INSERT INTO t VALUES (1);")
    conn = await _connect(settings)
    try:
        assert await migrate(conn, schema=settings.database_schema, directory=tmp_path) == [1, 2]
        assert await migrate(conn, schema=settings.database_schema, directory=tmp_path) == []
        assert await conn.fetchval("SELECT array_agg(v ORDER BY v) FROM t") == [1, 2]
        rows = await conn.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
        assert [(r["version"], r["name"]) for r in rows] == [(1, "a"), (2, "b")]
    finally:
        await conn.close()


async def test_concurrent_runners_apply_each_once(settings: Settings, tmp_path: Path) -> None:
    # pg_sleep widens the window in which a second runner would re-apply without the lock.
    write(tmp_path, "0001_a.sql", "CREATE TABLE t (v int); SELECT pg_sleep(0.3);")
    write(tmp_path, "0002_b.sql", "INSERT INTO t VALUES (1);")
    conns = [await _connect(settings) for _ in range(4)]
    try:
        results = await asyncio.gather(
            *(migrate(c, schema=settings.database_schema, directory=tmp_path) for c in conns)
        )
        assert sorted(results) == [[], [], [], [1, 2]]
        assert await conns[0].fetchval("SELECT count(*) FROM t") == 1
    finally:
        for c in conns:
            await c.close()


async def test_failed_migration_rolls_back_and_is_retried(
    settings: Settings, tmp_path: Path
) -> None:
    write(tmp_path, "0001_a.sql", "CREATE TABLE t (v int);")
    write(tmp_path, "0002_b.sql", "INSERT INTO t VALUES (1); SELECT * FROM missing_table;")
    conn = await _connect(settings)
    try:
        with pytest.raises(asyncpg.UndefinedTableError):
            await migrate(conn, schema=settings.database_schema, directory=tmp_path)
        assert await conn.fetchval("SELECT count(*) FROM t") == 0
        assert await conn.fetchval("SELECT max(version) FROM schema_migrations") == 1
        write(tmp_path, "0002_b.sql", "INSERT INTO t VALUES (1);")
        assert await migrate(conn, schema=settings.database_schema, directory=tmp_path) == [2]
        # The advisory lock was released after the failure: another runner is not blocked.
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                "AND pid = pg_backend_pid()"
            )
            == 0
        )
    finally:
        await conn.close()


async def test_edited_migration_is_refused(settings: Settings, tmp_path: Path) -> None:
    write(tmp_path, "0001_a.sql", "CREATE TABLE t (v int);")
    conn = await _connect(settings)
    try:
        await migrate(conn, schema=settings.database_schema, directory=tmp_path)
        write(tmp_path, "0001_a.sql", "CREATE TABLE t (v bigint);")
        with pytest.raises(MigrationError, match="changed after it was applied"):
            await migrate(conn, schema=settings.database_schema, directory=tmp_path)
    finally:
        await conn.close()


def test_bad_names_and_duplicates(tmp_path: Path) -> None:
    write(tmp_path, "1_a.sql", "")
    with pytest.raises(MigrationError, match=r"0001_name\.sql"):
        load_migrations(tmp_path)
    (tmp_path / "1_a.sql").unlink()
    write(tmp_path, "0001_a.sql", "")
    write(tmp_path, "0001_b.sql", "")
    with pytest.raises(MigrationError, match="share version 1"):
        load_migrations(tmp_path)


def test_repository_migrations_load() -> None:
    versions = [m.version for m in load_migrations()]
    assert versions == sorted(set(versions))
    assert versions[:3] == [1, 2, 3]
