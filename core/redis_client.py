"""redis.asyncio client factory and key naming.

Every key this server writes starts with the configured prefix, so tests (and several deployments
sharing a Redis) never collide. Keys that must live on one Redis Cluster slot together wrap their
shared part in braces (`{auction:42}`), which `Keys.slot()` builds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError

POOL_WAIT_S = 5.0  # longest a command waits for a free connection of the pool

# What a Redis call raises when Redis is unreachable or failing, for the callers that fail open
# or retry: the cluster client's own errors (no node reachable, a slot not served) do not
# derive from RedisError.
REDIS_ERRORS: tuple[type[Exception], ...] = (RedisError, RedisClusterException, OSError)


def create_redis(
    url: str, *, max_connections: int = 64, cluster: bool = False
) -> aioredis.Redis:
    """A client with a bounded pool; bytes in, bytes out (callers decode). Close with
    `await client.aclose()`. When all `max_connections` are busy (a reconnect storm: hundreds
    of websocket handshakes each checking a token and subscribing at once) a command waits up
    to `POOL_WAIT_S` for one instead of failing at once (redis-py's default pool raises
    `MaxConnectionsError`, which failed subscribes and revocation checks).

    `cluster=True`: a Redis Cluster client (`url` names any node; the rest are discovered),
    each command routed to the node of its key's slot, with `max_connections` per node. It is
    typed as `Redis` because the server uses only commands both clients have (single-slot
    scripts and commands, non-transactional pipelines, PUBLISH); the few places that differ ask
    `is_cluster()`: the batched rate-limit script and multi-key reads."""
    if cluster:
        client = RedisCluster.from_url(
            url, max_connections=max_connections, health_check_interval=30,
            socket_keepalive=True, socket_connect_timeout=5,
        )
        return cast(aioredis.Redis, client)
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=POOL_WAIT_S,
        health_check_interval=30,
        socket_keepalive=True,
        socket_connect_timeout=5,
        retry_on_timeout=True,
    )
    return aioredis.Redis.from_pool(pool)  # the client owns the pool: aclose() closes it


def is_cluster(client: aioredis.Redis) -> bool:
    """Whether `client` came from `create_redis(..., cluster=True)`."""
    return isinstance(client, RedisCluster)


@dataclass(frozen=True, slots=True)
class Keys:
    """Builds prefixed key names. `Keys("souk:").key("ratelimit", "login", "a@b")` →
    `souk:ratelimit:login:a@b`."""

    prefix: str

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def slot(self, tag: str, *parts: str) -> str:
        """A key hashed by `tag` only, for multi-key atomic scripts on Redis Cluster."""
        return self.prefix + "{" + tag + "}" + "".join(":" + p for p in parts)
