"""The live view in Redis: each rider's last accepted fix, the GEO set dispatch searches, and
when each rider was last heard from.

Keys (under the deployment's prefix):

    trk:r:{rider}   hash: lat, lon, ts (device ms), seen (server ms), speed, heading, ewma
                    (recent speed), avail (1/0); expires after a day of silence
    trk:geo         GEO set of available riders (member = rider id)
    trk:seen        sorted set: rider id → server ms of the last accepted fix
    trk:job:{rider} the rider's current order (JSON) or "" for none, cached briefly

Everything here can be rebuilt: a Redis that lost its data shows no rider until their next fix
(availability and assignments are reloaded from PostgreSQL), and history is never in Redis.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from core.coalesce import Coalescer
from core.redis_client import is_cluster
from tracking.model import Fix

STATE_TTL_S = 86_400

# One round trip per accepted fix: write the rider's last fix only if the stored one is still
# the one the fix was judged against (`expected` ts, or "-" for none), then the last-seen time
# and the GEO entry (by the stored availability when there is one: another process may have
# changed it), and return what the caller must learn: [written, availability, cached job].
# KEYS: state, seen, geo, job. ARGV: expected, member, now_ms, lon, lat, avail, ttl, fields...
_SAVE = """
local cur = redis.call('HGET', KEYS[1], 'ts')
if (ARGV[1] == '-' and cur) or (ARGV[1] ~= '-' and cur ~= ARGV[1]) then
  return {0, false, false}
end
local avail = redis.call('HGET', KEYS[1], 'avail') or ARGV[6]
redis.call('HSET', KEYS[1], 'avail', avail, unpack(ARGV, 8))
redis.call('EXPIRE', KEYS[1], ARGV[7])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
if avail == '1' then
  redis.call('GEOADD', KEYS[3], ARGV[4], ARGV[5], ARGV[2])
else
  redis.call('ZREM', KEYS[3], ARGV[2])
end
return {1, avail, redis.call('GET', KEYS[4])}
"""


@dataclass(frozen=True, slots=True)
class Assignment:
    """The order a rider is assigned to and not done with (from the orders domain)."""

    order_id: uuid.UUID
    state: str
    pickup: tuple[float, float] | None
    dropoff: tuple[float, float] | None

    def dump(self) -> bytes:
        return orjson.dumps({"o": str(self.order_id), "s": self.state, "p": self.pickup,
                             "d": self.dropoff})

    @classmethod
    def load(cls, raw: bytes) -> Assignment:
        doc = orjson.loads(raw)
        return cls(uuid.UUID(doc["o"]), doc["s"], _pair(doc["p"]), _pair(doc["d"]))


def _pair(value: Any) -> tuple[float, float] | None:
    return None if value is None else (float(value[0]), float(value[1]))


@dataclass(frozen=True, slots=True)
class RiderState:
    """What Redis remembers of a rider (None fields: unknown, e.g. after Redis lost it)."""

    last: Fix | None
    ewma: float | None
    available: bool | None
    job: Assignment | None
    job_known: bool  # False: the assignment cache missed


@dataclass(frozen=True, slots=True)
class OnlineRider:
    """A rider heard from recently, as the live view has them."""

    rider_id: uuid.UUID
    last: Fix
    seen_ms: int  # server time of the last accepted fix
    available: bool


class Live:
    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self.redis = redis
        self.geo = f"{prefix}trk:geo"
        self.seen = f"{prefix}trk:seen"
        self._prefix = prefix
        self._save = redis.register_script(_SAVE)
        # Saves made in the same event-loop turn share one pipeline (one round trip): at most
        # two batches on their way; what comes meanwhile goes with the next.
        self._saves: Coalescer[tuple[list[str], list[Any]], list[Any]] = Coalescer(
            self._save_batch, max_batch=500, max_in_flight=2)
        # The script's keys live in different slots: on a Redis Cluster the same steps run as
        # separate commands (the check and the write are then not one atomic step).
        self._cluster = is_cluster(redis)

    def state_key(self, rider: uuid.UUID) -> str:
        return f"{self._prefix}trk:r:{rider}"

    def job_key(self, rider: uuid.UUID) -> str:
        return f"{self._prefix}trk:job:{rider}"

    async def state(self, rider: uuid.UUID) -> RiderState:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.state_key(rider))
            pipe.get(self.job_key(rider))
            raw, job = await pipe.execute()
        last = None
        if raw.get(b"ts") is not None:
            last = Fix(float(raw[b"lat"]), float(raw[b"lon"]), int(raw[b"ts"]),
                       _opt(raw.get(b"speed")), _opt(raw.get(b"heading")))
        avail = raw.get(b"avail")
        return RiderState(
            last=last, ewma=_opt(raw.get(b"ewma")),
            available=None if avail is None else avail == b"1",
            job=Assignment.load(job) if job else None, job_known=job is not None,
        )

    async def save(self, rider: uuid.UUID, fix: Fix, *, judged_against: Fix | None,
                   ewma: float | None, available: bool, now_ms: int) -> RiderState | None:
        """Record an accepted fix (hash, last-seen time, GEO entry) in one round trip, unless
        the rider's stored last fix is no longer `judged_against` (another process accepted a
        fix meanwhile, or Redis lost the entry): then None, and the caller judges again.
        Returns the rider's availability and cached job as Redis has them."""
        fields: list[str | int | float] = ["lat", fix.lat, "lon", fix.lon, "ts", fix.ts_ms,
                                           "seen", now_ms]
        for name, value in (("speed", fix.speed_mps), ("heading", fix.heading), ("ewma", ewma)):
            if value is not None:
                fields += [name, value]
        expected = "-" if judged_against is None else str(judged_against.ts_ms)
        keys = [self.state_key(rider), self.seen, self.geo, self.job_key(rider)]
        args = [expected, str(rider), now_ms, fix.lon, fix.lat, "1" if available else "0",
                STATE_TTL_S, *fields]
        if self._cluster:
            written, avail, job = await self._save_steps(keys, args)
        else:
            written, avail, job = await self._saves.call((keys, args))
        if not written:
            return None
        return RiderState(last=fix, ewma=ewma, available=avail == b"1",
                          job=Assignment.load(job) if job else None, job_known=job is not None)

    async def _save_batch(self, items: list[tuple[list[str], list[Any]]]) -> list[list[Any]]:
        """EVALSHA of every item in one pipeline; loads the script when Redis lost it."""
        results: list[Any] = [None] * len(items)
        todo = list(range(len(items)))
        for _ in range(2):
            async with self.redis.pipeline(transaction=False) as pipe:
                for i in todo:
                    keys, args = items[i]
                    pipe.execute_command("EVALSHA", self._save.sha, len(keys), *keys, *args)
                answers = await pipe.execute(raise_on_error=False)
            missing = []
            for i, answer in zip(todo, answers, strict=True):
                if isinstance(answer, NoScriptError):
                    missing.append(i)
                elif isinstance(answer, Exception):
                    raise answer
                else:
                    results[i] = answer
            if not missing:
                return results
            await self.redis.script_load(_SAVE)
            todo = missing
        raise RuntimeError("the save script could not be loaded")

    async def _save_steps(self, keys: list[str], args: list[Any]) -> list[Any]:
        state, seen, geo, job_key = keys
        expected, member, now_ms, lon, lat, avail_arg, ttl, *fields = args
        current, stored_avail = await self.redis.hmget(state, "ts", "avail")
        current = current.decode() if isinstance(current, bytes) else current
        if (expected == "-" and current) or (expected != "-" and current != expected):
            return [0, None, None]
        avail = stored_avail or avail_arg.encode()
        mapping = dict(zip(fields[::2], fields[1::2], strict=True))
        await self.redis.hset(state, mapping={**mapping, "avail": avail})
        await self.redis.expire(state, ttl)
        await self.redis.zadd(seen, {member: now_ms})
        if avail == b"1":
            await self.redis.geoadd(geo, (lon, lat, member))
        else:
            await self.redis.zrem(geo, member)
        return [1, avail, await self.redis.get(job_key)]

    async def set_available(self, rider: uuid.UUID, available: bool) -> None:
        key, member = self.state_key(rider), str(rider)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(key, "avail", "1" if available else "0")
            pipe.expire(key, STATE_TTL_S)
            pipe.hmget(key, "lat", "lon")
            results = await pipe.execute()
        lat, lon = results[2]
        if available and lat is not None and lon is not None:
            await self.redis.geoadd(self.geo, (float(lon), float(lat), member))
        elif not available:
            await self.redis.zrem(self.geo, member)

    async def cache_job(self, rider: uuid.UUID, job: Assignment | None, ttl_s: int) -> None:
        await self.redis.set(self.job_key(rider), job.dump() if job else b"", ex=ttl_s)

    async def forget_job(self, rider: uuid.UUID) -> None:
        await self.redis.delete(self.job_key(rider))

    async def nearest(self, lat: float, lon: float, radius_m: float, count: int,
                      fresh_after_ms: int) -> list[tuple[uuid.UUID, float]]:
        """Available riders heard from after `fresh_after_ms`, nearest first: (id, metres)."""
        found: list[Any] = await self.redis.geosearch(
            self.geo, longitude=lon, latitude=lat, radius=radius_m, unit="m", sort="ASC",
            count=count, withdist=True)
        if not found:
            return []
        members = [m for m, _ in found]
        seen: list[float | None] = await self.redis.zmscore(self.seen, members)
        return [(uuid.UUID(m.decode()), float(d)) for (m, d), s in zip(found, seen, strict=True)
                if s is not None and s >= fresh_after_ms]

    async def online(self, fresh_after_ms: int, limit: int) -> tuple[int, list[OnlineRider]]:
        """Riders heard from at or after `fresh_after_ms`, most recently heard first (at most
        `limit`), with their last fix; and how many there are in all. Two round trips."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcount(self.seen, fresh_after_ms, "+inf")
            pipe.zrevrangebyscore(self.seen, "+inf", fresh_after_ms, start=0, num=limit,
                                  withscores=True)
            total, members = await pipe.execute()
        if not members:
            return int(total), []
        async with self.redis.pipeline(transaction=False) as pipe:
            for member, _ in members:
                pipe.hgetall(self.state_key(uuid.UUID(member.decode())))
            states = await pipe.execute()
        found = []
        for (member, seen), raw in zip(members, states, strict=True):
            if raw.get(b"ts") is None:
                continue  # the hash expired or was lost: nothing to show until the next fix
            fix = Fix(float(raw[b"lat"]), float(raw[b"lon"]), int(raw[b"ts"]),
                      _opt(raw.get(b"speed")), _opt(raw.get(b"heading")))
            found.append(OnlineRider(uuid.UUID(member.decode()), fix, int(seen),
                                     raw.get(b"avail") == b"1"))
        return int(total), found

    async def prune(self, stale_before_ms: int) -> int:
        """Take riders silent since `stale_before_ms` off the map; returns riders online."""
        stale = await self.redis.zrangebyscore(self.seen, "-inf", f"({stale_before_ms}")
        if stale:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.zrem(self.geo, *stale)
                pipe.zrem(self.seen, *stale)
                await pipe.execute()
        online: int = await self.redis.zcard(self.seen)
        return online


def _opt(raw: bytes | None) -> float | None:
    return None if raw is None else float(raw)
