"""What a benchmark leaves behind, removed: its PostgreSQL schema and its Redis keys (the
server processes it started write under `<schema>:`)."""

from __future__ import annotations

import asyncpg
import redis.asyncio as aioredis


async def drop(dsn: str, redis_url: str, schema: str, redis_prefix: str) -> None:
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
