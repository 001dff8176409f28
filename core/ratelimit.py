"""Token-bucket rate limiting in Redis, shared by every server process.

One Lua script refills and takes tokens atomically using the Redis server's clock, so processes
with skewed clocks agree. A bucket of `capacity` tokens refills at `capacity / window_s` per
second. `cost=0` only peeks: it says whether one token is available without taking it.

If Redis does not answer, the limiter fails open (logs, counts `souk_rate_limiter_errors_total`)
— an outage of the rate limiter must not take logins down with it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import redis.asyncio as aioredis

from core.coalesce import Coalescer
from core.errors import RateLimited
from core.metrics import Metrics
from core.redis_client import REDIS_ERRORS, is_cluster

log = logging.getLogger("souk.ratelimit")

_TOKEN_BUCKET = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or capacity
local ts = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate)
local need = math.max(cost, 1)
local allowed = 0
local retry = 0
if tokens >= need then
  tokens = tokens - cost
  allowed = 1
else
  retry = (need - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / rate * 1000) + 1000)
return {allowed, tostring(retry)}
"""  # noqa: S105 - a Lua script, not a password

# The same bucket for every key in KEYS (one round trip and one reply for a whole batch).
_TOKEN_BUCKETS = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local ttl = math.ceil(capacity / rate * 1000) + 1000
local need = math.max(cost, 1)
local out = {}
for i, key in ipairs(KEYS) do
  local state = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = tonumber(state[1]) or capacity
  local ts = tonumber(state[2]) or now
  tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate)
  if tokens >= need then
    tokens = tokens - cost
    out[i] = 'ok'
  else
    out[i] = tostring((need - tokens) / rate)
  end
  redis.call('HSET', key, 'tokens', tostring(tokens), 'ts', tostring(now))
  redis.call('PEXPIRE', key, ttl)
end
return out
"""  # noqa: S105 (a Lua script, not a secret)


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    retry_after_s: float


class RateLimiter:
    """Named token buckets under one key prefix."""

    def __init__(self, redis: aioredis.Redis, *, prefix: str, metrics: Metrics) -> None:
        self._redis = redis
        self._prefix = prefix
        self._metrics = metrics
        self._script = redis.register_script(_TOKEN_BUCKET)
        self._many = redis.register_script(_TOKEN_BUCKETS)
        self._cluster = is_cluster(redis)

    async def take(
        self, limiter: str, subject: str, *, capacity: int, window_s: float, cost: int = 1
    ) -> Decision:
        """Take `cost` tokens from bucket `limiter`/`subject`. Never raises on Redis failure."""
        key = f"{self._prefix}ratelimit:{limiter}:{subject}"
        try:
            allowed, retry = await self._script(
                keys=[key], args=[capacity, capacity / window_s, cost]
            )
        except REDIS_ERRORS as exc:
            self._metrics.rate_limiter_errors.labels(limiter).inc()
            log.warning("rate limiter unavailable, failing open", extra={"error": repr(exc)})
            return Decision(True, 0.0)
        decision = Decision(bool(int(allowed)), float(retry))
        if not decision.allowed:
            self._metrics.rate_limited.labels(limiter).inc()
        return decision

    async def enforce(
        self, limiter: str, subject: str, *, capacity: int, window_s: float,
        detail: str | None = None,
    ) -> None:
        """`take` one token; raise RateLimited (429 with Retry-After) when there is none."""
        decision = await self.take(limiter, subject, capacity=capacity, window_s=window_s)
        if not decision.allowed:
            raise RateLimited(decision.retry_after_s, detail)

    async def take_many(
        self, limiter: str, subjects: list[str], *, capacity: int, window_s: float, cost: int = 1
    ) -> list[Decision]:
        """`take` for many subjects in one round trip (hot paths that batch, such as bidding).
        Decisions come back in `subjects` order; a subject listed twice takes twice. Never
        raises on Redis failure."""
        if not subjects:
            return []
        keys = [f"{self._prefix}ratelimit:{limiter}:{subject}" for subject in subjects]
        args = [capacity, capacity / window_s, cost]
        try:
            if self._cluster:  # the keys live on many slots: one script call per key, at once
                pairs = await asyncio.gather(*(self._script(keys=[k], args=args) for k in keys))
                decisions = [Decision(bool(int(a)), float(r)) for a, r in pairs]
            else:  # one script over all keys: one round trip
                replies = await self._many(keys=keys, args=args)
                decisions = [Decision(True, 0.0) if r == b"ok" else Decision(False, float(r))
                             for r in replies]
        except REDIS_ERRORS as exc:
            self._metrics.rate_limiter_errors.labels(limiter).inc(len(subjects))
            log.warning("rate limiter unavailable, failing open", extra={"error": repr(exc)})
            return [Decision(True, 0.0) for _ in subjects]
        refused = sum(1 for d in decisions if not d.allowed)
        if refused:
            self._metrics.rate_limited.labels(limiter).inc(refused)
        return decisions

    async def reset(self, limiter: str, subject: str) -> None:
        await self._redis.delete(f"{self._prefix}ratelimit:{limiter}:{subject}")


class CoalescingLimiter:
    """One bucket kind (`name`, `capacity`, `window_s`) whose `take`s are coalesced: the takes
    issued in the same event-loop turn go to Redis in one round trip (`RateLimiter.take_many`),
    and while one is on its way the next ones wait and go together when it comes back — a hot
    caller (an auction's bidders) pays one Redis call per round trip instead of one per take.
    Fails open like the limiter itself."""

    def __init__(self, limiter: RateLimiter, name: str, *, capacity: int, window_s: float,
                 max_batch: int = 1_000) -> None:
        async def send(subjects: list[str]) -> list[Decision]:
            return await limiter.take_many(name, subjects, capacity=capacity, window_s=window_s)

        self._batches: Coalescer[str, Decision] = Coalescer(send, max_batch=max_batch,
                                                           max_in_flight=1)

    async def take(self, subject: str) -> Decision:
        return await self._batches.call(subject)
