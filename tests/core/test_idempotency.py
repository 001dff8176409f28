"""Idempotency keys on the real database."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest

from core.context import Runtime
from core.errors import IdempotencyKeyReused, NotFound
from core.idempotency import prune, request_hash, run_idempotent


async def test_replay_same_body_runs_once(rt: Runtime) -> None:
    calls = 0

    async def work(conn: asyncpg.Connection) -> tuple[int, Any]:
        nonlocal calls
        calls += 1
        return 201, {"n": calls}

    user = uuid.uuid4()
    fp = request_hash(b'{"a":1}')
    first = await run_idempotent(
        rt.pool, user_id=user, scope="t", key="k1", fingerprint=fp, work=work
    )
    again = await run_idempotent(
        rt.pool, user_id=user, scope="t", key="k1", fingerprint=fp, work=work
    )
    assert (first.status, first.body, first.replayed) == (201, {"n": 1}, False)
    assert (again.status, again.body, again.replayed) == (201, {"n": 1}, True)
    assert calls == 1
    with pytest.raises(IdempotencyKeyReused):
        await run_idempotent(
            rt.pool,
            user_id=user,
            scope="t",
            key="k1",
            fingerprint=request_hash(b'{"a":2}'),
            work=work,
        )
    # Keys are per user: another user may use the same key.
    other = await run_idempotent(
        rt.pool, user_id=uuid.uuid4(), scope="t", key="k1", fingerprint=fp, work=work
    )
    assert other.replayed is False


async def test_failed_work_stores_nothing(rt: Runtime) -> None:
    async def failing(conn: asyncpg.Connection) -> tuple[int, Any]:
        await conn.execute("SELECT 1")
        raise NotFound()

    async def ok(conn: asyncpg.Connection) -> tuple[int, Any]:
        return 200, {"ok": True}

    user, fp = uuid.uuid4(), request_hash(b"x")
    with pytest.raises(NotFound):
        await run_idempotent(
            rt.pool, user_id=user, scope="t", key="k", fingerprint=fp, work=failing
        )
    out = await run_idempotent(rt.pool, user_id=user, scope="t", key="k", fingerprint=fp, work=ok)
    assert out.replayed is False and out.body == {"ok": True}


async def test_concurrent_duplicates_run_once(rt: Runtime) -> None:
    calls = 0

    async def slow(conn: asyncpg.Connection) -> tuple[int, Any]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.2)
        return 201, {"id": str(uuid.uuid4())}

    user, fp = uuid.uuid4(), request_hash(b"same")
    outs = await asyncio.gather(
        *(
            run_idempotent(rt.pool, user_id=user, scope="t", key="race", fingerprint=fp, work=slow)
            for _ in range(5)
        )
    )
    assert calls == 1
    assert len({o.body["id"] for o in outs}) == 1
    assert sum(not o.replayed for o in outs) == 1


async def _stored_key(rt: Runtime, key: str, age_s: int) -> None:
    await rt.pool.execute(
        "INSERT INTO idempotency_keys (user_id, scope, key, request_hash, status_code, response,"
        " created_at) VALUES ($1, 't', $2, '\\x00', 201, '{}', now() - make_interval(secs => $3))",
        uuid.uuid4(), key, float(age_s),
    )


async def _keys(rt: Runtime) -> set[str]:
    return {r["key"] for r in await rt.pool.fetch("SELECT key FROM idempotency_keys")}


async def test_prune_deletes_only_old_rows_oldest_first_and_at_most_limit(rt: Runtime) -> None:
    # Younger than the app's own pruning job keeps (IDEMPOTENCY_KEEP_S, 24 h), so only the
    # calls below delete them.
    for i, age in enumerate((4_000, 5_000, 6_000)):
        await _stored_key(rt, f"old{i}", age)
    await _stored_key(rt, "fresh", 10)
    assert await prune(rt.pool, older_than_s=3_600, limit=2) == 2
    assert await _keys(rt) == {"old0", "fresh"}  # the two oldest went first
    assert await prune(rt.pool, older_than_s=3_600) == 1
    assert await prune(rt.pool, older_than_s=3_600) == 0
    assert await _keys(rt) == {"fresh"}
