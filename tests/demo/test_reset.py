"""`python -m api demo-reset`: the demo back to its first state, and where it is refused."""

from __future__ import annotations

import os
import subprocess
import sys

import asyncpg
import pytest
import redis.asyncio as aioredis

from core.config import Settings
from tests.support.servers import ROOT, settings_env

pytestmark = pytest.mark.integration


def cli(settings: Settings, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **settings_env(settings), **extra_env}
    return subprocess.run([sys.executable, "-m", "api", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False,
                          stdin=subprocess.DEVNULL)


async def test_demo_reset_starts_over_from_the_demo_data(settings: Settings) -> None:
    assert cli(settings, "seed-demo").returncode == 0
    conn = await asyncpg.connect(settings.database_url,
                                 server_settings={"search_path": settings.database_schema})
    rd = aioredis.Redis.from_url(settings.redis_url)
    outside = settings.redis_prefix.rstrip(":") + "-not-ours"  # close, but not under the prefix
    try:
        await conn.execute("UPDATE users SET display_name = 'changed' WHERE email LIKE 'buyer@%'")
        before = await conn.fetchval("SELECT id FROM auctions")
        await rd.set(f"{settings.redis_prefix}leftover", "1")
        await rd.set(outside, "1")

        assert cli(settings, "demo-reset").returncode != 0  # no terminal to ask: needs --yes
        refused = cli(settings, "demo-reset", "--yes", SOUK_ENV="prod")
        assert refused.returncode != 0 and "SOUK_ENV=prod" in refused.stderr
        assert await conn.fetchval("SELECT display_name FROM users WHERE email LIKE 'buyer@%'") \
            == "changed"

        done = cli(settings, "demo-reset", "--yes")
        assert done.returncode == 0, done.stderr
        assert "demo reset" in done.stdout
    finally:
        await conn.close()
    conn = await asyncpg.connect(settings.database_url,
                                 server_settings={"search_path": settings.database_schema})
    try:
        assert await conn.fetchval(
            "SELECT display_name FROM users WHERE email LIKE 'buyer@%'") == "Omar"
        auctions = await conn.fetch("SELECT id, state FROM auctions")
        assert [r["state"] for r in auctions] == ["open"] and auctions[0]["id"] != before
        assert await conn.fetchval("SELECT count(*) FROM users") == 4
        assert not await rd.exists(f"{settings.redis_prefix}leftover")
        assert await rd.exists(outside)
    finally:
        await conn.close()
        await rd.delete(outside)
        await rd.aclose()
