"""The redis-py PubSub members the broker's reader relies on (realtime/redis_pubsub.py), on the
installed redis-py and a real Redis: fails naming them if an upgrade changed them."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from core.config import Settings
from realtime.redis_pubsub import RELIED_ON, RawPubSub, missing


def test_every_relied_on_member_exists() -> None:
    assert set(RELIED_ON) == {"connect", "execute_command", "parse_response", "aclose"}
    assert missing() == []


async def test_raw_replies_round_trip_through_redis(settings: Settings) -> None:
    client = aioredis.from_url(settings.redis_url)
    channel = f"{settings.redis_prefix}raw-pubsub-test".encode()
    ps = RawPubSub(client)
    try:
        await ps.connect()
        await ps.send("SUBSCRIBE", channel)
        async with asyncio.timeout(5):
            assert await ps.read() == [b"subscribe", channel, 1]
            assert await client.publish(channel, b"hello") == 1
            assert await ps.read() == [b"message", channel, b"hello"]
            await ps.send("UNSUBSCRIBE", channel)
            assert await ps.read() == [b"unsubscribe", channel, 0]
    finally:
        await ps.aclose()
        await client.aclose()
