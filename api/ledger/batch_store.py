"""Ledger SQL for group commit (api.ledger.batcher): a batch of transfers in three statements.

Inside one transaction: read which ids are stored already, lock every account of the batch in
ascending id (creating the legs' missing accounts first, in key order, as `store.lock_accounts`
does), then one statement inserts the posted transfers and their entries, sets each touched
account to its final balance and adds the `wallet.changed` outbox events. The database's own
guards still apply to every row (append-only triggers, the deferred sum-to-zero trigger, the
non-negative CHECK).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from api.ledger.batching import Decision
from api.ledger.rules import AccountKey, AccountKind, TransferKind
from api.ledger.store import LockedAccount
from core.outbox import NOTIFY_CHANNEL

_LOCK = """
    SELECT a.id, a.kind, a.owner_id, a.currency, a.balance FROM ledger_accounts a
    JOIN unnest($1::text[], $2::uuid[], $3::text[]) AS k(kind, owner_id, currency)
      ON a.kind = k.kind AND a.owner_id = k.owner_id AND a.currency = k.currency
    ORDER BY a.id FOR UPDATE OF a"""

_WRITE = f"""
    WITH t AS (
        INSERT INTO ledger_transfers (id, kind, request_hash, order_id, reference_id, metadata)
        SELECT * FROM unnest($1::uuid[], $2::text[], $3::bytea[], $4::uuid[], $5::uuid[],
                             $6::jsonb[])
        RETURNING id, created_at),
    e AS (
        INSERT INTO ledger_entries (transfer_id, account_id, amount, balance_after)
        SELECT * FROM unnest($7::uuid[], $8::bigint[], $9::bigint[], $10::bigint[])),
    u AS (
        UPDATE ledger_accounts a SET balance = d.balance
        FROM unnest($11::bigint[], $12::bigint[]) AS d(id, balance) WHERE a.id = d.id),
    o AS (
        INSERT INTO outbox (topic, channels, payload)
        SELECT 'wallet.changed', ARRAY[c], p FROM unnest($13::text[], $14::jsonb[]) AS x(c, p)),
    n AS (SELECT pg_notify('{NOTIFY_CHANNEL}', ''))
    SELECT t.id, t.created_at FROM t, n"""


async def stored(
    conn: asyncpg.Connection, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, tuple[TransferKind, bytes]]:
    rows = await conn.fetch(
        "SELECT id, kind, request_hash FROM ledger_transfers WHERE id = ANY($1::uuid[])", ids
    )
    return {r["id"]: (TransferKind(r["kind"]), bytes(r["request_hash"])) for r in rows}


def _columns(keys: Sequence[AccountKey]) -> tuple[list[str], list[uuid.UUID], list[str]]:
    return [k.kind.value for k in keys], [k.owner for k in keys], [k.currency for k in keys]


async def lock_balances(
    conn: asyncpg.Connection, legs: Sequence[AccountKey], read: Sequence[AccountKey]
) -> dict[AccountKey, LockedAccount]:
    """Lock the accounts of `legs` (created when missing) and of `read` (when they exist) in
    ascending id; their ids and balances."""
    keys = [*legs, *read]
    rows = await conn.fetch(_LOCK, *_columns(keys))
    found = {_key(r) for r in rows}
    missing = sorted(k for k in legs if k not in found)
    if missing:
        await conn.execute(
            """INSERT INTO ledger_accounts (kind, owner_id, currency)
               SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[]) ON CONFLICT DO NOTHING""",
            *_columns(missing),
        )
        rows = await conn.fetch(_LOCK, *_columns(keys))
    return {_key(r): LockedAccount(r["id"], r["balance"]) for r in rows}


def _key(row: asyncpg.Record) -> AccountKey:
    return AccountKey(AccountKind(row["kind"]), row["owner_id"], row["currency"])


async def write(
    conn: asyncpg.Connection, d: Decision, accounts: dict[AccountKey, LockedAccount]
) -> dict[uuid.UUID, datetime]:
    """Write the posted transfers of decision `d`; their creation times by id."""
    posted, entries = d.posted, d.entries
    rows = await conn.fetch(
        _WRITE,
        [r.id for r in posted], [r.kind.value for r in posted], [r.digest for r in posted],
        [r.order_id for r in posted], [r.reference_id for r in posted],
        [dict(r.metadata) for r in posted],
        [e.transfer_id for e in entries], [accounts[e.account].id for e in entries],
        [e.amount for e in entries], [e.balance_after for e in entries],
        [accounts[k].id for k in d.balances], list(d.balances.values()),
        [f"user:{n.owner}" for n in d.notes],
        [{"user_id": str(n.owner), "transfer_id": str(n.transfer_id), "kind": n.kind.value,
          "currency": n.currency, "available": n.available, "held": n.held} for n in d.notes],
    )
    return {r["id"]: r["created_at"] for r in rows}
