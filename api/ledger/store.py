"""Ledger SQL. Every function runs on a connection inside the caller's transaction.

Lock order, always: the transfer id's advisory lock, then the order's funds row, then ledger
accounts in ascending id order. Keeping that order everywhere prevents deadlocks between ledger
operations.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from api.ledger.rules import AccountKey, AccountKind, Leg, TransferKind

_LOCK_NAMESPACE = 0x4C45  # "LE": two-int advisory keys never collide with single-bigint ones


@dataclass(frozen=True, slots=True)
class StoredLeg:
    account: AccountKey
    amount: int
    balance_after: int


@dataclass(frozen=True, slots=True)
class StoredTransfer:
    id: uuid.UUID
    kind: TransferKind
    request_hash: bytes
    order_id: uuid.UUID | None
    reference_id: uuid.UUID | None
    metadata: dict[str, Any]
    created_at: datetime
    legs: tuple[StoredLeg, ...]


async def lock_transfer_id(conn: asyncpg.Connection, transfer_id: uuid.UUID) -> None:
    """Serialise concurrent requests carrying the same transfer id until the caller's
    transaction ends (a duplicate then sees the committed original)."""
    key = int.from_bytes(transfer_id.bytes[:4], "big", signed=True)
    await conn.execute("SELECT pg_advisory_xact_lock($1::int, $2::int)", _LOCK_NAMESPACE, key)


async def get_transfer(conn: asyncpg.Connection, transfer_id: uuid.UUID) -> StoredTransfer | None:
    row = await conn.fetchrow("SELECT * FROM ledger_transfers WHERE id = $1", transfer_id)
    if row is None:
        return None
    legs = await conn.fetch(
        """SELECT a.kind, a.owner_id, a.currency, e.amount, e.balance_after
           FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id
           WHERE e.transfer_id = $1 ORDER BY e.id""",
        transfer_id,
    )
    return StoredTransfer(
        id=row["id"],
        kind=TransferKind(row["kind"]),
        request_hash=bytes(row["request_hash"]),
        order_id=row["order_id"],
        reference_id=row["reference_id"],
        metadata=row["metadata"],
        created_at=row["created_at"],
        legs=tuple(
            StoredLeg(
                AccountKey(AccountKind(r["kind"]), r["owner_id"], r["currency"]),
                r["amount"],
                r["balance_after"],
            )
            for r in legs
        ),
    )


@dataclass(frozen=True, slots=True)
class LockedAccount:
    id: int
    balance: int


_LOCK_ACCOUNTS = """
    SELECT a.id, a.kind, a.owner_id, a.currency, a.balance FROM ledger_accounts a
    JOIN unnest($1::text[], $2::uuid[], $3::text[]) AS k(kind, owner_id, currency)
      ON a.kind = k.kind AND a.owner_id = k.owner_id AND a.currency = k.currency
    ORDER BY a.id FOR UPDATE OF a"""


async def lock_accounts(
    conn: asyncpg.Connection, keys: Sequence[AccountKey]
) -> dict[AccountKey, LockedAccount]:
    """Lock the accounts for `keys` in ascending id order (creating missing ones with a zero
    balance first) and return their ids and balances. One round trip when all exist."""
    columns = ([k.kind.value for k in keys], [k.owner for k in keys], [k.currency for k in keys])
    rows = await conn.fetch(_LOCK_ACCOUNTS, *columns)
    if len(rows) < len(keys):
        found = {_key(r) for r in rows}
        # Sorted so concurrent creators insert in the same order (no unique-index deadlock).
        missing = sorted(k for k in keys if k not in found)
        await conn.execute(
            """INSERT INTO ledger_accounts (kind, owner_id, currency)
               SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[])
               ON CONFLICT DO NOTHING""",
            [k.kind.value for k in missing],
            [k.owner for k in missing],
            [k.currency for k in missing],
        )
        rows = await conn.fetch(_LOCK_ACCOUNTS, *columns)
    return {_key(r): LockedAccount(r["id"], r["balance"]) for r in rows}


def _key(row: asyncpg.Record) -> AccountKey:
    return AccountKey(AccountKind(row["kind"]), row["owner_id"], row["currency"])


async def write_transfer(
    conn: asyncpg.Connection,
    *,
    transfer_id: uuid.UUID,
    kind: TransferKind,
    request_hash: bytes,
    order_id: uuid.UUID | None,
    reference_id: uuid.UUID | None,
    metadata: dict[str, Any],
    legs: Sequence[Leg],
    accounts: dict[AccountKey, LockedAccount],
) -> StoredTransfer:
    """Insert the transfer and its entries and move the balances, in one statement. The
    accounts must already be locked (`lock_accounts`) and `legs` checked."""
    account_ids = [accounts[leg.account].id for leg in legs]
    amounts = [leg.amount for leg in legs]
    after = [accounts[leg.account].balance + leg.amount for leg in legs]
    created_at = await conn.fetchval(
        """WITH t AS (
               INSERT INTO ledger_transfers (id, kind, request_hash, order_id, reference_id,
                                             metadata)
               VALUES ($1, $2, $3, $4, $5, $6) RETURNING id, created_at),
           e AS (
               INSERT INTO ledger_entries (transfer_id, account_id, amount, balance_after)
               SELECT t.id, d.* FROM t,
                   unnest($7::bigint[], $8::bigint[], $9::bigint[]) AS d(account, amount, after)),
           u AS (
               UPDATE ledger_accounts a SET balance = a.balance + d.amount
               FROM unnest($7::bigint[], $8::bigint[]) AS d(id, amount) WHERE a.id = d.id)
           SELECT created_at FROM t""",
        transfer_id,
        kind.value,
        request_hash,
        order_id,
        reference_id,
        metadata,
        account_ids,
        amounts,
        after,
    )
    return StoredTransfer(
        id=transfer_id,
        kind=kind,
        request_hash=request_hash,
        order_id=order_id,
        reference_id=reference_id,
        metadata=metadata,
        created_at=created_at,
        legs=tuple(
            StoredLeg(leg.account, leg.amount, value)
            for leg, value in zip(legs, after, strict=True)
        ),
    )


# --- order funds ----------------------------------------------------------------------------


async def lock_order_funds(
    conn: asyncpg.Connection, order_id: uuid.UUID
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM ledger_order_funds WHERE order_id = $1 FOR UPDATE", order_id
    )


async def insert_order_funds(
    conn: asyncpg.Connection,
    *,
    order_id: uuid.UUID,
    buyer_id: uuid.UUID,
    currency: str,
    held: int,
    hold_transfer: uuid.UUID,
) -> bool:
    """Record a new hold. False if the order already has one."""
    done = await conn.fetchval(
        """INSERT INTO ledger_order_funds (order_id, buyer_id, currency, state, held,
                                           hold_transfer)
           VALUES ($1, $2, $3, 'held', $4, $5) ON CONFLICT DO NOTHING RETURNING true""",
        order_id,
        buyer_id,
        currency,
        held,
        hold_transfer,
    )
    return bool(done)


async def update_order_funds(
    conn: asyncpg.Connection, order_id: uuid.UUID, **changes: Any
) -> None:
    allowed = {
        "state",
        "captured",
        "capture_transfer",
        "refunded",
        "seller_id",
        "settled",
        "fee",
        "settle_transfer",
        "refunded_after_settle",
    }
    names = sorted(changes)
    if not names or not set(names) <= allowed:
        raise ValueError(f"cannot update order funds columns {names}")
    assignments = ", ".join(f"{name} = ${i + 2}" for i, name in enumerate(names))
    await conn.execute(
        f"UPDATE ledger_order_funds SET {assignments}, updated_at = now() WHERE order_id = $1",
        order_id,
        *(changes[n] for n in names),
    )


# --- payouts -------------------------------------------------------------------------------


async def insert_payout(
    conn: asyncpg.Connection, *, payout_id: uuid.UUID, seller_id: uuid.UUID, amount: int,
    currency: str,
) -> None:
    await conn.execute(
        "INSERT INTO ledger_payouts (id, seller_id, amount, currency) VALUES ($1, $2, $3, $4)",
        payout_id,
        seller_id,
        amount,
        currency,
    )


async def lock_payout(conn: asyncpg.Connection, payout_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM ledger_payouts WHERE id = $1 FOR UPDATE", payout_id)


async def resolve_payout(
    conn: asyncpg.Connection, payout_id: uuid.UUID, state: str,
    reversal: uuid.UUID | None = None,
) -> None:
    await conn.execute(
        """UPDATE ledger_payouts SET state = $2, reversal_transfer = $3, updated_at = now()
           WHERE id = $1 AND state = 'requested'""",
        payout_id,
        state,
        reversal,
    )


async def payouts_of(
    conn: asyncpg.Connection | asyncpg.Pool, seller_id: uuid.UUID, *, limit: int
) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT id, amount, currency, state, created_at, updated_at FROM ledger_payouts
           WHERE seller_id = $1 ORDER BY created_at DESC, id LIMIT $2""",
        seller_id,
        limit,
    )
    return rows


# --- reads ----------------------------------------------------------------------------------


async def balance_of(conn: asyncpg.Connection | asyncpg.Pool, key: AccountKey) -> int:
    value = await conn.fetchval(
        "SELECT balance FROM ledger_accounts WHERE kind = $1 AND owner_id = $2 AND currency = $3",
        key.kind.value,
        key.owner,
        key.currency,
    )
    return int(value or 0)


async def account_id(conn: asyncpg.Connection | asyncpg.Pool, key: AccountKey) -> int | None:
    value = await conn.fetchval(
        "SELECT id FROM ledger_accounts WHERE kind = $1 AND owner_id = $2 AND currency = $3",
        key.kind.value,
        key.owner,
        key.currency,
    )
    return int(value) if value is not None else None


async def statement(
    conn: asyncpg.Connection | asyncpg.Pool, account: int, *, before: int | None, limit: int
) -> list[asyncpg.Record]:
    """Entries of one account, newest first, with running balance; `before` is an entry id."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT e.id, e.transfer_id, e.amount, e.balance_after, e.created_at,
                  t.kind, t.order_id, t.reference_id
           FROM ledger_entries e JOIN ledger_transfers t ON t.id = e.transfer_id
           WHERE e.account_id = $1 AND ($2::bigint IS NULL OR e.id < $2)
           ORDER BY e.id DESC LIMIT $3""",
        account,
        before,
        limit,
    )
    return rows


async def balances_by_kind(conn: asyncpg.Connection | asyncpg.Pool) -> list[asyncpg.Record]:
    """(kind, currency, total, accounts): the stored balances summed by account kind."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT kind, currency, sum(balance)::bigint AS total, count(*) AS accounts
           FROM ledger_accounts GROUP BY kind, currency ORDER BY kind, currency""")
    return rows


async def audit(conn: asyncpg.Connection | asyncpg.Pool) -> dict[str, Any]:
    """Recompute every balance from entries and compare with the stored balances; check every
    transfer sums to zero and every currency's balances sum to zero."""
    mismatched = await conn.fetch(
        """SELECT a.id, a.kind, a.owner_id, a.currency, a.balance,
                  coalesce(s.total, 0) AS recomputed
           FROM ledger_accounts a
           LEFT JOIN (SELECT account_id, sum(amount) AS total FROM ledger_entries
                      GROUP BY account_id) s ON s.account_id = a.id
           WHERE a.balance <> coalesce(s.total, 0)
           ORDER BY a.id LIMIT 100"""
    )
    unbalanced = await conn.fetch(
        """SELECT e.transfer_id, a.currency, sum(e.amount) AS total
           FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id
           GROUP BY e.transfer_id, a.currency HAVING sum(e.amount) <> 0 LIMIT 100"""
    )
    currencies = await conn.fetch(
        """SELECT currency, sum(balance) AS total, count(*) AS accounts
           FROM ledger_accounts GROUP BY currency ORDER BY currency"""
    )
    negative = await conn.fetchval(
        """SELECT count(*) FROM ledger_accounts
           WHERE balance < 0 AND kind IN ('buyer_wallet', 'buyer_held', 'order_escrow')"""
    )
    counts = await conn.fetchrow(
        "SELECT (SELECT count(*) FROM ledger_transfers) AS transfers, "
        "(SELECT count(*) FROM ledger_entries) AS entries"
    )
    return _audit_report(mismatched, unbalanced, currencies, int(negative), counts)


def _audit_report(
    mismatched: list[asyncpg.Record], unbalanced: list[asyncpg.Record],
    currencies: list[asyncpg.Record], negative: int, counts: asyncpg.Record,
) -> dict[str, Any]:
    return {
        "ok": not mismatched
        and not unbalanced
        and not negative
        and all(r["total"] == 0 for r in currencies),
        "transfers": counts["transfers"],
        "entries": counts["entries"],
        "currencies": [
            {"currency": r["currency"], "sum": int(r["total"]), "accounts": r["accounts"]}
            for r in currencies
        ],
        "balance_mismatches": [
            {
                "account_id": r["id"],
                "kind": r["kind"],
                "owner_id": str(r["owner_id"]),
                "currency": r["currency"],
                "stored": r["balance"],
                "recomputed": int(r["recomputed"]),
            }
            for r in mismatched
        ],
        "unbalanced_transfers": [
            {"transfer_id": str(r["transfer_id"]), "currency": r["currency"],
             "sum": int(r["total"])}
            for r in unbalanced
        ],
        "negative_accounts": negative,
    }
