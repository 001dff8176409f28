"""Where the real PostgreSQL and Redis are, and per-test isolation on them.

Each test gets its own PostgreSQL schema and Redis key prefix on the shared servers (no flushing,
so tests can run beside anything else). With CI=true a missing service fails the test; locally it
skips with the reason, because the test command always provides both.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from core.config import Settings

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def service_urls() -> tuple[str, str]:
    db, rd = os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
    if not db or not rd:
        message = (
            "DATABASE_URL and REDIS_URL are not set: run the suite with scripts/test, which "
            "provides them"
        )
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return db, rd


def unique_name(prefix: str = "t") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def make_settings(key_dir: Path, **overrides: object) -> Settings:
    db, rd = service_urls()
    name = unique_name()
    base = Settings(
        database_url=db,
        redis_url=rd,
        jwt_key_dir=key_dir,
        env="test",
        database_schema=name,
        database_pool_min=1,
        database_pool_max=10,
        redis_prefix=f"{name}:",
        payment_provider="demo",
        log_level="WARNING",
        log_json=True,
        gc_gen0_threshold=0,  # see core/gctune.py: never freeze the test runner's heap
        register_rate_per_address=1_000_000,  # tests register many users from one address
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


async def drop_isolation(settings: Settings) -> None:
    """Drop the test's schema and Redis keys."""
    await drop_schema_and_keys(settings.database_url, settings.redis_url,
                               settings.database_schema, settings.redis_prefix)


async def drop_schema_and_keys(dsn: str, redis_url: str, schema: str, redis_prefix: str) -> None:
    """Drop a PostgreSQL schema and every Redis key under a prefix (tests, benchmarks)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()
    client = aioredis.Redis.from_url(redis_url)
    try:
        keys = [k async for k in client.scan_iter(match=f"{redis_prefix}*", count=1000)]
        for i in range(0, len(keys), 500):
            await client.delete(*keys[i : i + 500])
    finally:
        await client.aclose()
