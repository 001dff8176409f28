"""The Redis client the server builds: replies parsed by hiredis (a dependency: the
pure-Python parser cost ~100 µs more CPU per multi-key rate-limit call, BENCHMARKS.md), and a
burst of commands beyond its pool waits for connections instead of failing."""

from __future__ import annotations

import asyncio
import uuid

from redis._parsers import _AsyncHiredisParser

from core.config import Settings
from core.redis_client import create_redis


async def test_replies_are_parsed_by_hiredis(settings: Settings) -> None:
    client = create_redis(settings.redis_url)
    try:
        assert await client.ping()
        conn = await client.connection_pool.get_connection()
        try:
            assert isinstance(conn._parser, _AsyncHiredisParser)
        finally:
            await client.connection_pool.release(conn)
    finally:
        await client.aclose()


async def test_a_burst_beyond_the_pool_waits_for_connections(settings: Settings) -> None:
    client = create_redis(settings.redis_url, max_connections=2)
    key = f"{settings.redis_prefix}burst-{uuid.uuid4().hex}"
    try:
        # six commands that each hold a connection for 0.1 s, on a pool of two
        results = await asyncio.gather(*(client.blpop([key], timeout=0.1) for _ in range(6)))
        assert results == [None] * 6
    finally:
        await client.aclose()
