"""People for load: many funded buyers at once (one INSERT, one transaction of top-ups)."""

from __future__ import annotations

import uuid

import asyncpg

from api.ledger import service as ledger
from core.auth import KeyRing, Role, TokenService
from core.config import Settings


async def funded_buyers(pool: asyncpg.Pool, settings: Settings, n: int, *,
                        funds: int) -> list[tuple[str, str]]:
    """`n` buyers with `funds` (USD cents) each: (user id, access token)."""
    emails = [f"{uuid.uuid4().hex}@crowd.test" for _ in range(n)]
    rows = await pool.fetch(
        """INSERT INTO users (email, email_normalized, password_hash, display_name, role)
           SELECT e, e, 'unusable', 'Bidder ' || n, 'buyer'
           FROM unnest($1::text[]) WITH ORDINALITY AS t(e, n) RETURNING id""", emails)
    tokens = TokenService(KeyRing.load(settings.jwt_key_dir, settings.jwt_active_kid),
                          settings.jwt_issuer, settings.jwt_audience, 3600)
    async with pool.acquire() as conn, conn.transaction():
        for r in rows:
            await ledger.topup(conn, user_id=r["id"], amount=funds, currency="USD",
                               transfer_id=uuid.uuid4())
    return [(str(r["id"]), tokens.issue(r["id"], Role.BUYER)) for r in rows]
