"""Which process holds a show's relay, recorded in Redis with a lease.

The process that accepts a show's publisher writes `<prefix>stream:owner:<show id>` =
`<process token> <base URL>` with a TTL of STREAMING_LEASE_S and renews it while it holds the
show (publisher connected or inside the grace period). A process that dies stops renewing, so
its shows are free again after one lease. Other processes read the key to redirect WHEP (and
WHIP) requests with `307` to the owner's base URL.

Shows that went live with video are also in the set `<prefix>stream:shows` until they end, so
that any process can end the show of a process that died (`orphans`): no owner for longer than
the grace period, as if its publisher had left.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable

import redis.asyncio as aioredis

# Renew or release only what this process still holds (compare-and-set).
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class Ownership:
    def __init__(self, redis: aioredis.Redis, *, prefix: str, lease_s: float) -> None:
        self._redis = redis
        self._prefix = prefix
        self._lease_ms = int(lease_s * 1000)
        self.token = uuid.uuid4().hex

    def _key(self, show_id: uuid.UUID) -> str:
        return f"{self._prefix}stream:owner:{show_id}"

    def _value(self, base_url: str) -> str:
        return f"{self.token} {base_url}"

    async def acquire(self, show_id: uuid.UUID, base_url: str) -> str | None:
        """Take or keep the lease. None when this process holds it now; else the owner's base
        URL."""
        key, value = self._key(show_id), self._value(base_url)
        if await self._redis.set(key, value, nx=True, px=self._lease_ms):
            return None
        current = await self._redis.get(key)
        if current is None:  # expired in between
            return None if await self._redis.set(key, value, nx=True, px=self._lease_ms) \
                else await self.owner(show_id)
        text = current.decode() if isinstance(current, bytes) else str(current)
        token, _, url = text.partition(" ")
        if token == self.token:
            await self._redis.set(key, value, px=self._lease_ms)
            return None
        return url

    async def owner(self, show_id: uuid.UUID) -> str | None:
        """The base URL of the process holding the show, or None."""
        current = await self._redis.get(self._key(show_id))
        if current is None:
            return None
        text = current.decode() if isinstance(current, bytes) else str(current)
        _token, _, url = text.partition(" ")
        return url or None

    async def renew(self, held: Iterable[tuple[uuid.UUID, str]]) -> list[uuid.UUID]:
        """Extend the leases of the shows held; returns those this process lost."""
        lost: list[uuid.UUID] = []
        for show_id, base_url in held:
            ok = await self._redis.eval(_RENEW, 1, self._key(show_id), self._value(base_url),
                                        self._lease_ms)
            if not ok:
                lost.append(show_id)
        return lost

    async def release(self, show_id: uuid.UUID, base_url: str) -> None:
        await self._redis.eval(_RELEASE, 1, self._key(show_id),
                               self._value(base_url))

    def _shows(self) -> str:
        return f"{self._prefix}stream:shows"

    async def mark_live(self, show_id: uuid.UUID) -> None:
        await self._redis.sadd(self._shows(), str(show_id))

    async def unmark(self, show_id: uuid.UUID) -> None:
        await self._redis.srem(self._shows(), str(show_id))
        await self._redis.delete(f"{self._prefix}stream:orphan:{show_id}")

    async def orphans(self, grace_s: float) -> list[uuid.UUID]:
        """Live video shows nobody has held for `grace_s` (their owner died). The first process
        to see a show without owner notes the time; every process agrees on it."""
        now = time.time()
        out: list[uuid.UUID] = []
        members = await self._redis.smembers(self._shows())
        for raw in members:
            text = raw.decode() if isinstance(raw, bytes) else str(raw)
            try:
                show_id = uuid.UUID(text)
            except ValueError:
                continue
            orphan_key = f"{self._prefix}stream:orphan:{show_id}"
            if await self._redis.exists(self._key(show_id)):
                await self._redis.delete(orphan_key)
                continue
            ttl = int(grace_s * 4 + self._lease_ms / 1000) + 60
            await self._redis.set(orphan_key, repr(now), nx=True, ex=ttl)
            since = await self._redis.get(orphan_key)
            if since is not None and now - float(since) >= grace_s:
                out.append(show_id)
        return out
