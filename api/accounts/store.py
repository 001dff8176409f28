"""Account and refresh-token storage in PostgreSQL."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

import asyncpg

from core.auth import Role


class EmailTaken(Exception):
    pass


@dataclass(frozen=True, slots=True)
class User:
    id: uuid.UUID
    email: str
    display_name: str
    role: Role
    status: str
    password_hash: str
    created_at: datetime


def _user(row: asyncpg.Record) -> User:
    return User(
        id=row["id"],
        email=row["email"],
        display_name=row["display_name"],
        role=Role(row["role"]),
        status=row["status"],
        password_hash=row["password_hash"],
        created_at=row["created_at"],
    )


async def create_user(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    email: str,
    email_normalized: str,
    password_hash: str,
    display_name: str,
    role: Role,
) -> User:
    """Insert a user. Raises EmailTaken when the normalised email exists."""
    try:
        row = await conn.fetchrow(
            """INSERT INTO users (email, email_normalized, password_hash, display_name, role)
               VALUES ($1, $2, $3, $4, $5) RETURNING *""",
            email.strip(),
            email_normalized,
            password_hash,
            display_name.strip(),
            role.value,
        )
    except asyncpg.UniqueViolationError:
        raise EmailTaken() from None
    return _user(row)


async def user_by_email(
    conn: asyncpg.Connection | asyncpg.Pool, email_normalized: str
) -> User | None:
    row = await conn.fetchrow("SELECT * FROM users WHERE email_normalized = $1", email_normalized)
    return _user(row) if row else None


async def user_by_id(conn: asyncpg.Connection | asyncpg.Pool, user_id: uuid.UUID) -> User | None:
    row = await conn.fetchrow("SELECT * FROM users WHERE id = $1", user_id)
    return _user(row) if row else None


def new_refresh_token() -> tuple[str, bytes]:
    """A fresh opaque refresh token and the digest stored for it."""
    token = secrets.token_urlsafe(32)
    return token, digest(token)


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def insert_refresh(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    user_id: uuid.UUID,
    token_hash: bytes,
    ttl_s: int,
    family_id: uuid.UUID | None = None,
    parent_id: uuid.UUID | None = None,
) -> None:
    await conn.execute(
        """INSERT INTO refresh_tokens (token_hash, family_id, parent_id, user_id, expires_at)
           VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))""",
        token_hash,
        family_id or uuid.uuid4(),
        parent_id,
        user_id,
        float(ttl_s),
    )


class RotateOutcome(Enum):
    ROTATED = "rotated"
    REUSED = "reused"
    INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class Rotation:
    outcome: RotateOutcome
    user: User | None = None
    token_id: uuid.UUID | None = None
    family_id: uuid.UUID | None = None
    user_id: uuid.UUID | None = None


async def rotate_refresh(conn: asyncpg.Connection, token_hash: bytes) -> Rotation:
    """Mark a live refresh token used, in the caller's transaction. A token already used is a
    reuse: its whole family is revoked. Unknown, expired or revoked tokens are INVALID."""
    row = await conn.fetchrow(
        """UPDATE refresh_tokens SET used_at = now()
           WHERE token_hash = $1 AND used_at IS NULL AND revoked_at IS NULL
             AND expires_at > now()
           RETURNING id, family_id, user_id""",
        token_hash,
    )
    if row is not None:
        user = await user_by_id(conn, row["user_id"])
        if user is None or user.status != "active":
            return Rotation(RotateOutcome.INVALID)
        return Rotation(RotateOutcome.ROTATED, user, row["id"], row["family_id"])
    seen = await conn.fetchrow(
        "SELECT family_id, user_id, used_at, revoked_at FROM refresh_tokens"
        " WHERE token_hash = $1",
        token_hash,
    )
    if seen is not None and seen["used_at"] is not None:
        await revoke_family(conn, seen["family_id"], reason="reuse_detected")
        return Rotation(RotateOutcome.REUSED, family_id=seen["family_id"],
                        user_id=seen["user_id"])
    return Rotation(RotateOutcome.INVALID)


async def revoke_family(
    conn: asyncpg.Connection | asyncpg.Pool, family_id: uuid.UUID, *, reason: str
) -> None:
    await conn.execute(
        """UPDATE refresh_tokens SET revoked_at = now(), revoked_reason = $2
           WHERE family_id = $1 AND revoked_at IS NULL""",
        family_id,
        reason,
    )


async def revoke_by_token(
    conn: asyncpg.Connection | asyncpg.Pool, token_hash: bytes, user_id: uuid.UUID
) -> uuid.UUID | None:
    """Revoke the family of the caller's refresh token; its id, or None if it is not
    theirs."""
    family = await conn.fetchval(
        "SELECT family_id FROM refresh_tokens WHERE token_hash = $1 AND user_id = $2",
        token_hash,
        user_id,
    )
    if family is None:
        return None
    await revoke_family(conn, family, reason="logout")
    family_id: uuid.UUID = family
    return family_id
