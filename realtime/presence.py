"""Presence: how many are watching a show and who is in its chat, across processes.

Each process (node) keeps a heartbeat key `<prefix>rt-node:<node>` with a TTL and, every
`interval` seconds, writes its local subscriber count per presence channel into the hash
`<prefix>{rt:<channel>}:presence` (field = node id) and its signed-in chat members into
`<prefix>{rt:<channel>}:who` (field = `<node>:<client>`, value = user id). Readers sum only the
fields of nodes whose heartbeat is alive and delete the others, so a process that dies without
cleaning up drops out after at most the TTL.

Show viewer counts are published on `show:{id}` as latest-value publications
(`{"type": "viewers", "count": N}`, key `viewers`) whenever the total changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

import redis.asyncio as aioredis

from core.redis_client import REDIS_ERRORS, is_cluster
from realtime.channels import BadChannel, Channel, Kind, parse_channel
from realtime.hub import Client, Hub

log = logging.getLogger("souk.realtime.presence")

PRESENCE_KINDS = frozenset({Kind.SHOW, Kind.SHOW_CHAT})


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class Presence:
    """What the endpoint tells presence tracking (`Gateway.presence`); a no-op by default."""

    def joined(self, channel: Channel, client: Client) -> None:
        return None

    def left(self, channel: Channel, client: Client) -> None:
        return None


class RedisPresence(Presence):
    def __init__(self, redis: aioredis.Redis, hub: Hub, *, prefix: str, ttl_s: int = 15) -> None:
        self._redis = redis
        self._hub = hub
        self._prefix = prefix
        self._ttl_s = ttl_s
        self.interval_s = max(0.5, min(2.0, ttl_s / 3))
        self.node = uuid.uuid4().hex[:16]
        self._written: dict[str, set[str]] = {}  # channel -> who fields this node wrote
        self._counted: set[str] = set()
        self._published: dict[str, int] = {}
        self._wake = asyncio.Event()
        self._stopping = False

    def _key(self, channel: str, what: str) -> str:
        return f"{self._prefix}{{rt:{channel}}}:{what}"

    def _node_key(self, node: str) -> str:
        return f"{self._prefix}rt-node:{node}"

    def joined(self, channel: Channel, client: Client) -> None:
        if channel.kind in PRESENCE_KINDS:
            self._wake.set()

    def left(self, channel: Channel, client: Client) -> None:
        if channel.kind in PRESENCE_KINDS:
            self._wake.set()

    def stop(self) -> None:
        """Make `run` return after its current step (a flag, not only a cancellation: the
        Redis client has been seen to swallow a cancellation, which left the loop running)."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Heartbeat and sync until `stop()` or cancelled; Redis errors are logged, retried."""
        while not self._stopping:
            try:
                await self.sync()
            except REDIS_ERRORS as exc:
                log.warning("presence sync failed", extra={"error": repr(exc)})
            except Exception:  # never die silently: log and keep going
                log.exception("presence sync crashed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):  # stop() sets the event too
                async with asyncio.timeout(self.interval_s):
                    await self._wake.wait()
            await asyncio.sleep(0.05)  # coalesce bursts of joins

    async def sync(self) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.set(self._node_key(self.node), b"1", ex=self._ttl_s)
        now_counted: set[str] = set()
        for name in list(self._hub.channels):
            try:
                kind = parse_channel(name).kind
            except BadChannel:
                continue
            if kind not in PRESENCE_KINDS:
                continue
            count = self._hub.local_count(name)
            key = self._key(name, "presence")
            pipe.hset(key, self.node, count)
            pipe.expire(key, self._ttl_s * 4)
            now_counted.add(name)
            if kind is Kind.SHOW_CHAT:
                self._sync_who(pipe, name)
        for name in self._counted - now_counted:
            pipe.hdel(self._key(name, "presence"), self.node)
            self._published.pop(name, None)
            fields = self._written.pop(name, set())
            if fields:
                pipe.hdel(self._key(name, "who"), *fields)
        self._counted = now_counted
        await pipe.execute()
        for name in now_counted:
            if parse_channel(name).kind is Kind.SHOW:
                await self._publish_count(name)

    def _sync_who(self, pipe: aioredis.client.Pipeline, name: str) -> None:
        members = {f"{self.node}:{c.id}": str(c.subject.user_id)
                   for c in self._hub.subscribers(name) if c.subject.user_id is not None}
        before = self._written.get(name, set())
        gone = before - members.keys()
        key = self._key(name, "who")
        if gone:
            pipe.hdel(key, *gone)
        if members:
            pipe.hset(key, mapping=members)  # type: ignore[arg-type]
            pipe.expire(key, self._ttl_s * 4)
        self._written[name] = set(members)

    async def _alive(self, nodes: list[str]) -> set[str]:
        if not nodes:
            return set()
        keys = [self._node_key(n) for n in nodes]
        if is_cluster(self._redis):  # the keys span slots: read slot by slot
            flags = await self._redis.mget_nonatomic(keys)  # type: ignore[attr-defined]
        else:
            flags = await self._redis.mget(keys)
        return {n for n, f in zip(nodes, flags, strict=True) if f is not None}

    async def count(self, channel: str) -> int:
        """Subscribers of `channel` over all live processes."""
        raw = await self._redis.hgetall(self._key(channel, "presence"))
        counts = {_text(k): int(v) for k, v in raw.items()}
        alive = await self._alive(list(counts))
        dead = [n for n in counts if n not in alive]
        if dead:
            await self._redis.hdel(self._key(channel, "presence"), *dead)
        return sum(c for n, c in counts.items() if n in alive)

    async def who(self, channel: str, *, limit: int = 100) -> list[str]:
        """Distinct signed-in user ids in `channel` (at most `limit`)."""
        raw = await self._redis.hgetall(self._key(channel, "who"))
        fields = {_text(k): _text(v) for k, v in raw.items()}
        nodes = sorted({f.split(":", 1)[0] for f in fields})
        alive = await self._alive(nodes)
        dead = [f for f in fields if f.split(":", 1)[0] not in alive]
        if dead:
            await self._redis.hdel(self._key(channel, "who"), *dead)
        users = sorted({u for f, u in fields.items() if f.split(":", 1)[0] in alive})
        return users[:limit]

    async def _publish_count(self, name: str) -> None:
        total = await self.count(name)
        if self._published.get(name) != total:
            self._published[name] = total
            await self._hub.publish(name, {"type": "viewers", "count": total}, key="viewers")

    async def close(self) -> None:
        """Remove this node's entries (a clean shutdown; a crash is covered by the TTL)."""
        with contextlib.suppress(*REDIS_ERRORS):
            pipe = self._redis.pipeline(transaction=False)
            pipe.delete(self._node_key(self.node))
            for name in self._counted:
                pipe.hdel(self._key(name, "presence"), self.node)
            for name, fields in self._written.items():
                if fields:
                    pipe.hdel(self._key(name, "who"), *fields)
            await pipe.execute()
