"""Idempotency keys on the real database."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest

from core.context import Runtime
from core.errors import IdempotencyKeyReused, NotFound
from core.idempotency import request_hash, run_idempotent


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
