"""The Redis client the server builds parses replies with hiredis (a dependency): the
pure-Python parser cost ~100 µs more CPU per multi-key rate-limit call (BENCHMARKS.md)."""

from __future__ import annotations

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
