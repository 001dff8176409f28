"""Idempotency-Key handling for POSTs that move money, create orders or place bids.

The key row is inserted in the same transaction as the work, keyed by (user, scope, key):
- first request: the row and the work commit together, with the response stored;
- a concurrent duplicate blocks on the primary key until the first commits, then replays it;
- a retry after success replays the stored status and body and changes nothing;
- the same key with a different body is refused with `idempotency_key_reused` (409);
- if the work fails, the transaction rolls back, no row remains, and the client may retry.
Rows older than the retention period (`IDEMPOTENCY_KEEP_S`, 24 h by default) are deleted by
`prune()`, which the app runs every `IDEMPOTENCY_PRUNE_INTERVAL_S` (api/app.py `commerce_jobs`);
a key reused after that is a new request.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from core.db import rows_affected
from core.errors import FieldError, IdempotencyKeyReused, ValidationFailed

MAX_KEY_LENGTH = 255
# visible ASCII only, as the OpenAPI document says (no spaces: they are easy to lose)
_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")
Work = Callable[[asyncpg.Connection], Awaitable[tuple[int, Any]]]


@dataclass(frozen=True, slots=True)
class Outcome:
    status: int
    body: Any
    replayed: bool


def check_key(key: str | None) -> str | None:
    """Validate an `Idempotency-Key` header value (None when absent)."""
    if key is None:
        return None
    if not _KEY_RE.match(key):
        raise ValidationFailed(
            [FieldError("Idempotency-Key",
                        f"must be 1 to {MAX_KEY_LENGTH} visible ASCII characters")]
        )
    return key


def request_hash(*parts: bytes | str) -> bytes:
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return h.digest()


_STORED = """SELECT request_hash, status_code, response FROM idempotency_keys
              WHERE user_id = $1 AND scope = $2 AND key = $3"""


def _replay(row: asyncpg.Record, fingerprint: bytes) -> Outcome:
    """The stored answer of a key, for a request with `fingerprint` (another body: reused)."""
    if bytes(row["request_hash"]) != fingerprint:
        raise IdempotencyKeyReused()
    return Outcome(row["status_code"], row["response"], True)


async def run_idempotent(
    pool: asyncpg.Pool,
    *,
    user_id: uuid.UUID,
    scope: str,
    key: str | None,
    fingerprint: bytes,
    work: Work,
) -> Outcome:
    """Run `work(conn)` in one transaction, at most once per (user, scope, key).

    `fingerprint` identifies the request content (use `request_hash(body)`); `work` returns
    (status, JSON-able body). Without a key, the work simply runs in a transaction. Raises
    IdempotencyKeyReused, or whatever `work` raises (then nothing is stored)."""
    async with pool.acquire() as conn, conn.transaction():
        if key is not None:
            claimed = await conn.fetchval(
                """INSERT INTO idempotency_keys (user_id, scope, key, request_hash, status_code,
                                                 response)
                   VALUES ($1, $2, $3, $4, 0, 'null'::jsonb)
                   ON CONFLICT DO NOTHING RETURNING true""",
                user_id,
                scope,
                key,
                fingerprint,
            )
            if not claimed:
                row = await conn.fetchrow(_STORED, user_id, scope, key)
                if row is None:  # pruned between the two statements: extremely rare; retry
                    return await run_idempotent(
                        pool,
                        user_id=user_id,
                        scope=scope,
                        key=key,
                        fingerprint=fingerprint,
                        work=work,
                    )
                return _replay(row, fingerprint)
        status, body = await work(conn)
        if key is not None:
            await conn.execute(
                """UPDATE idempotency_keys SET status_code = $4, response = $5
                   WHERE user_id = $1 AND scope = $2 AND key = $3""",
                user_id,
                scope,
                key,
                status,
                body,
            )
        return Outcome(status, body, False)


async def run_then_store(
    pool: asyncpg.Pool,
    *,
    user_id: uuid.UUID,
    scope: str,
    key: str | None,
    fingerprint: bytes,
    work: Callable[[], Awaitable[tuple[int, Any]]],
) -> Outcome:
    """`run_idempotent` for work that commits by itself and is idempotent by itself (its
    writes are keyed by an id derived from the key, e.g. a ledger transfer posted through the
    group commit, api.ledger.batcher), so it need not share a transaction with the key row:

    - an answer already stored for (user, scope, key) is replayed (another body: reused);
    - otherwise `work()` runs (committed when it returns), then its answer is stored; if a
      concurrent duplicate stored one first, that one is returned (the work itself replayed);
    - a crash between the work's commit and the key row leaves no row: the retry runs the work
      again, which replays (the same transfer), and stores the answer.

    Two round trips (read the key, store the answer) and no connection held during the work."""
    if key is None:
        status, body = await work()
        return Outcome(status, body, False)
    row = await pool.fetchrow(_STORED, user_id, scope, key)
    if row is None:
        status, body = await work()
        claimed = await pool.fetchval(
            """INSERT INTO idempotency_keys (user_id, scope, key, request_hash, status_code,
                                             response)
               VALUES ($1, $2, $3, $4, $5, $6)
               ON CONFLICT DO NOTHING RETURNING true""",
            user_id, scope, key, fingerprint, status, body,
        )
        if claimed:
            return Outcome(status, body, False)
        row = await pool.fetchrow(_STORED, user_id, scope, key)
        if row is None:  # stored and pruned meanwhile: the work's answer stands
            return Outcome(status, body, False)
    return _replay(row, fingerprint)


async def prune(
    conn: asyncpg.Connection | asyncpg.Pool, *, older_than_s: int = 86_400, limit: int = 10_000,
) -> int:
    """Delete at most `limit` key rows older than `older_than_s` (oldest first, so a long
    backlog goes in bounded statements); returns how many."""
    result: str = await conn.execute(
        "DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY("
        " SELECT ctid FROM idempotency_keys"
        " WHERE created_at < now() - make_interval(secs => $1)"
        " ORDER BY created_at LIMIT $2))",
        float(older_than_s), limit,
    )
    return rows_affected(result)
