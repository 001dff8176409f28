"""Show storage in PostgreSQL."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from api.shows.rules import ShowState


@dataclass(frozen=True, slots=True)
class Show:
    id: uuid.UUID
    seller_id: uuid.UUID
    title: str
    state: ShowState
    starts_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    created_at: datetime


def _show(row: asyncpg.Record) -> Show:
    return Show(row["id"], row["seller_id"], row["title"], ShowState(row["state"]),
                row["starts_at"], row["started_at"], row["ended_at"], row["created_at"])


async def create(db: asyncpg.Pool | asyncpg.Connection, *, seller_id: uuid.UUID, title: str,
                 starts_at: datetime | None) -> Show:
    row = await db.fetchrow(
        "INSERT INTO shows (seller_id, title, starts_at) VALUES ($1, $2, $3) RETURNING *",
        seller_id, title, starts_at,
    )
    return _show(row)


async def get(db: asyncpg.Pool | asyncpg.Connection, show_id: uuid.UUID, *,
              for_update: bool = False) -> Show | None:
    sql = "SELECT * FROM shows WHERE id = $1" + (" FOR UPDATE" if for_update else "")
    row = await db.fetchrow(sql, show_id)
    return _show(row) if row else None


async def ended_among(db: asyncpg.Pool | asyncpg.Connection,
                      show_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Which of `show_ids` have ended."""
    rows = await db.fetch("SELECT id FROM shows WHERE id = ANY($1::uuid[]) AND state = 'ended'",
                          show_ids)
    return {row["id"] for row in rows}


async def listing(db: asyncpg.Pool, *, states: list[str] | None, seller_id: uuid.UUID | None,
                  limit: int) -> list[Show]:
    """Live shows first (latest started first), then scheduled ones by start time (soonest
    first, unscheduled last), then ended ones, newest first."""
    rows = await db.fetch(
        """SELECT * FROM shows
           WHERE ($1::text[] IS NULL OR state = ANY($1)) AND ($2::uuid IS NULL OR seller_id = $2)
           ORDER BY CASE state WHEN 'live' THEN 0 WHEN 'scheduled' THEN 1 ELSE 2 END,
                    CASE WHEN state = 'live' THEN started_at END DESC NULLS LAST,
                    CASE WHEN state = 'scheduled' THEN starts_at END ASC NULLS LAST,
                    created_at DESC, id
           LIMIT $3""",
        states, seller_id, limit,
    )
    return [_show(r) for r in rows]


async def set_state(conn: asyncpg.Connection, show_id: uuid.UUID, state: ShowState,
                    expected: ShowState) -> Show | None:
    """Conditional write: only from `expected`. None when the show moved meanwhile."""
    column = "started_at" if state is ShowState.LIVE else "ended_at"
    row = await conn.fetchrow(
        f"UPDATE shows SET state = $2, {column} = now() WHERE id = $1 AND state = $3 RETURNING *",
        show_id, state.value, expected.value,
    )
    return _show(row) if row else None


async def restriction(db: asyncpg.Pool, show_id: uuid.UUID, user_id: uuid.UUID) -> str | None:
    kind: str | None = await db.fetchval(
        "SELECT kind FROM show_chat_restrictions WHERE show_id = $1 AND user_id = $2",
        show_id, user_id,
    )
    return kind


async def restrict(db: asyncpg.Pool, show_id: uuid.UUID, user_id: uuid.UUID, kind: str,
                   by: uuid.UUID) -> None:
    await db.execute(
        """INSERT INTO show_chat_restrictions (show_id, user_id, kind, created_by)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (show_id, user_id) DO UPDATE SET kind = EXCLUDED.kind,
               created_by = EXCLUDED.created_by, created_at = now()""",
        show_id, user_id, kind, by,
    )


async def unrestrict(db: asyncpg.Pool, show_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    result: str = await db.execute(
        "DELETE FROM show_chat_restrictions WHERE show_id = $1 AND user_id = $2",
        show_id, user_id,
    )
    return result.endswith(" 1")


async def user_exists(db: asyncpg.Pool, user_id: uuid.UUID) -> bool:
    return bool(await db.fetchval("SELECT 1 FROM users WHERE id = $1", user_id))


async def ensure_demo_show(pool: asyncpg.Pool, seller_id: uuid.UUID, title: str) -> Show:
    """The seller's show with this title, created when missing (idempotent demo seed)."""
    row = await pool.fetchrow(
        "SELECT * FROM shows WHERE seller_id = $1 AND title = $2 ORDER BY created_at LIMIT 1",
        seller_id, title,
    )
    if row is not None:
        return _show(row)
    return await create(pool, seller_id=seller_id, title=title, starts_at=None)
