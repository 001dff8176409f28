"""Device keys for the OsmAnd protocol: issued to a rider, stored hashed, revocable.

A key is 32 random bytes (URL-safe text); only its SHA-256 is stored, so a database leak shows
no usable key. Lookups go through Redis (`trk:dev:{hash}` → rider id, or empty for an unknown
or revoked key, for `CACHE_S`) so a reporting phone costs no SQL; revoking overwrites the
cached entry at once, and a Redis that lost its data only means one SQL lookup more.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import redis.asyncio as aioredis

from core.coalesce import Coalescer
from core.redis_client import REDIS_ERRORS, is_cluster

CACHE_S = 300
KEY_PREFIX = "trk_"
MAX_DEVICES = 20  # per rider, unrevoked


@dataclass(frozen=True, slots=True)
class Device:
    id: uuid.UUID
    rider_id: uuid.UUID
    label: str | None
    created_at: datetime
    revoked_at: datetime | None


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def _device(row: asyncpg.Record) -> Device:
    return Device(row["id"], row["rider_id"], row["label"], row["created_at"], row["revoked_at"])


class Devices:
    def __init__(self, pool: asyncpg.Pool, redis: aioredis.Redis, prefix: str) -> None:
        self.pool = pool
        self.redis = redis
        self.prefix = prefix
        # Lookups made in the same event-loop turn share one MGET.
        self._gets: Coalescer[str, bytes | str | None] = Coalescer(
            self._mget, max_batch=500, max_in_flight=2)

    async def _mget(self, keys: list[str]) -> list[bytes | str | None]:
        if is_cluster(self.redis):  # the keys are in different slots
            found: list[bytes | str | None] = await self.redis.mget_nonatomic(  # type: ignore[attr-defined]
                keys)
            return found
        found = await self.redis.mget(keys)
        return found

    def _cache_key(self, digest: bytes) -> str:
        return f"{self.prefix}trk:dev:{digest.hex()}"

    async def issue(self, rider_id: uuid.UUID, label: str | None) -> tuple[Device, str] | None:
        """A new key for `rider_id` (None when the rider holds MAX_DEVICES live keys)."""
        key = new_key()
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1::uuid::text))", rider_id)
            live = await conn.fetchval(
                "SELECT count(*) FROM tracking_devices WHERE rider_id = $1 AND revoked_at IS NULL",
                rider_id)
            if live >= MAX_DEVICES:
                return None
            row = await conn.fetchrow(
                """INSERT INTO tracking_devices (rider_id, key_hash, label) VALUES ($1, $2, $3)
                   RETURNING *""", rider_id, key_hash(key), label)
        return _device(row), key

    async def list(self, rider_id: uuid.UUID) -> list[Device]:
        rows = await self.pool.fetch(
            "SELECT * FROM tracking_devices WHERE rider_id = $1 ORDER BY created_at, id",
            rider_id)
        return [_device(r) for r in rows]

    async def get(self, device_id: uuid.UUID) -> Device | None:
        row = await self.pool.fetchrow("SELECT * FROM tracking_devices WHERE id = $1", device_id)
        return None if row is None else _device(row)

    async def revoke(self, device_id: uuid.UUID) -> None:
        digest: bytes | None = await self.pool.fetchval(
            """UPDATE tracking_devices SET revoked_at = coalesce(revoked_at, now())
               WHERE id = $1 RETURNING key_hash""", device_id)
        if digest is not None:
            # Written after the commit: any lookup from now on sees "revoked".
            await self.redis.set(self._cache_key(digest), "", ex=CACHE_S)

    async def rider_of(self, key: str) -> uuid.UUID | None:
        """The rider a live key belongs to, else None."""
        digest = key_hash(key)
        cache = self._cache_key(digest)
        try:
            cached = await self._gets.call(cache)
        except REDIS_ERRORS:
            cached = None
        if cached is not None:
            text = cached.decode() if isinstance(cached, bytes) else cached
            return uuid.UUID(text) if text else None
        rider: uuid.UUID | None = await self.pool.fetchval(
            "SELECT rider_id FROM tracking_devices WHERE key_hash = $1 AND revoked_at IS NULL",
            digest)
        with contextlib.suppress(*REDIS_ERRORS):
            # NX: never overwrite what a revoke wrote meanwhile.
            await self.redis.set(cache, str(rider) if rider else "", ex=CACHE_S, nx=True)
        return rider
