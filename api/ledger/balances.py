"""Read-only views of ledger balances (re-exported by `api.ledger.service`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from api.ledger import rules, store
from api.ledger.rules import AccountKind


@dataclass(frozen=True, slots=True)
class WalletView:
    currency: str
    available: int
    held: int


async def wallet(
    conn: asyncpg.Connection | asyncpg.Pool, user_id: uuid.UUID, currency: str
) -> WalletView:
    row = await conn.fetchrow(
        """SELECT coalesce(sum(balance) FILTER (WHERE kind = 'buyer_wallet'), 0) AS available,
                  coalesce(sum(balance) FILTER (WHERE kind = 'buyer_held'), 0) AS held
           FROM ledger_accounts
           WHERE owner_id = $1 AND currency = $2 AND kind IN ('buyer_wallet', 'buyer_held')""",
        user_id,
        currency,
    )
    return WalletView(currency, int(row["available"]), int(row["held"]))


async def available_many(
    conn: asyncpg.Connection | asyncpg.Pool, user_ids: list[uuid.UUID], currency: str
) -> dict[uuid.UUID, int]:
    """Spendable wallet balances of many buyers in one query (`wallet(...).available` each);
    buyers without a wallet in `currency` are absent."""
    rows = await conn.fetch(
        "SELECT owner_id, sum(balance) AS available FROM ledger_accounts "
        "WHERE owner_id = ANY($1::uuid[]) AND currency = $2 AND kind = 'buyer_wallet' "
        "GROUP BY owner_id", user_ids, currency)
    return {r["owner_id"]: int(r["available"]) for r in rows}


async def order_escrow(conn: asyncpg.Connection | asyncpg.Pool, order_id: uuid.UUID) -> int:
    """The order's escrow balance (0 when nothing was ever captured)."""
    value = await conn.fetchval(
        "SELECT coalesce(sum(balance), 0) FROM ledger_accounts "
        "WHERE kind = 'order_escrow' AND owner_id = $1",
        order_id,
    )
    return int(value)


async def seller_payable(
    conn: asyncpg.Connection | asyncpg.Pool, seller_id: uuid.UUID, currency: str
) -> int:
    return await store.balance_of(
        conn, rules.user_account(AccountKind.SELLER_PAYABLE, seller_id, currency)
    )


async def order_funds(
    conn: asyncpg.Connection | asyncpg.Pool, order_id: uuid.UUID
) -> dict[str, Any] | None:
    """The order's funds record (state, held, captured, refunded, settled, fee), or None."""
    row = await conn.fetchrow("SELECT * FROM ledger_order_funds WHERE order_id = $1", order_id)
    return dict(row) if row is not None else None
