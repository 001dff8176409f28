"""`python -m api demo-reset`: put a demo back to its first state. It drops the schema
(`DATABASE_SCHEMA`) and deletes every Redis key under `REDIS_PREFIX`, migrates again and loads
the demo data set. Refused with `SOUK_ENV=prod`; stop the demo's server first (`./scripts/demo
--fresh` does it in the right order).
"""

from __future__ import annotations

import asyncpg
import redis.asyncio as aioredis

from core.config import Settings
from core.redis_client import create_redis, is_cluster


class ResetRefused(Exception):
    pass


def check_allowed(settings: Settings) -> None:
    """Raises ResetRefused where a reset must never run."""
    if settings.env == "prod":
        raise ResetRefused("demo-reset is refused with SOUK_ENV=prod")
    if not settings.redis_prefix:
        raise ResetRefused("demo-reset needs a REDIS_PREFIX (it deletes the keys under it)")


async def wipe(settings: Settings) -> int:
    """Drop the schema and the prefix's Redis keys. Returns how many keys went."""
    check_allowed(settings)
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{settings.database_schema}" CASCADE')
    finally:
        await conn.close()
    client = create_redis(settings.redis_url, max_connections=4, cluster=settings.redis_cluster)
    deleted = 0
    try:
        batch: list[bytes] = []
        async for key in client.scan_iter(match=f"{settings.redis_prefix}*", count=1000):
            batch.append(key)
            if len(batch) == 500:
                deleted += await _delete(client, batch)
                batch = []
        deleted += await _delete(client, batch)
    finally:
        await client.aclose()
    return deleted


async def _delete(client: aioredis.Redis, keys: list[bytes]) -> int:
    if not keys:
        return 0
    if not is_cluster(client):
        return int(await client.delete(*keys))
    # On a Redis Cluster the keys of one DEL must share a slot: one key per command.
    return sum([int(await client.delete(key)) for key in keys])
