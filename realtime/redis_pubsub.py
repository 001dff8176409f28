"""Raw pub/sub on redis-py's asyncio `PubSub`: the one place that uses its undocumented parts.

The broker (redis_broker.py) keeps its own list of channels and reads replies as Redis sends
them: it sends (S)SUBSCRIBE/(S)UNSUBSCRIBE with `execute_command` and reads each reply with
`parse_response(block=True)` — the raw RESP list (`[b"message", channel, data]`,
`[b"subscribe", channel, n]`, ...), without `get_message`'s subscription bookkeeping and
handler dispatch, which the broker does not use and which cost a dict lookup and a copy per
message. `RELIED_ON` lists those members; tests/realtime/test_redis_pubsub.py checks them on the
installed redis-py and a round trip through a real Redis, and fails naming them on an upgrade
that changed them; importing this module logs an error if any is missing.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

import redis
import redis.asyncio as aioredis

log = logging.getLogger("souk.realtime.bus")

RELIED_ON: tuple[str, ...] = ("connect", "execute_command", "parse_response", "aclose")


def missing() -> list[str]:
    """The members of redis-py's asyncio PubSub this module relies on that it lacks."""
    out = [name for name in RELIED_ON if not hasattr(aioredis.client.PubSub, name)]
    parse = getattr(aioredis.client.PubSub, "parse_response", None)
    if parse is not None and "block" not in inspect.signature(parse).parameters:
        out.append("parse_response(block=)")
    return out


if gone := missing():  # pragma: no cover - only on an incompatible redis-py
    log.error("redis-py %s lacks %s: the pub/sub reader will fail", redis.__version__, gone)


class RawPubSub:
    """One pub/sub connection, driven by raw commands and read reply by reply."""

    __slots__ = ("_ps",)

    def __init__(self, client: aioredis.Redis) -> None:
        self._ps: Any = client.pubsub()

    async def connect(self) -> None:
        await self._ps.connect()

    async def send(self, *args: Any) -> None:
        """Send one command on the pub/sub connection (its reply is read by `read`)."""
        await self._ps.execute_command(*args)

    async def read(self) -> Any:
        """The next reply (a RESP list), waiting for it; None when there was none."""
        return await self._ps.parse_response(block=True)

    async def aclose(self) -> None:
        await self._ps.aclose()
