"""PostgreSQL writes of auctions: creating one, the writer's lock, the batched bid write, the
state, settlement, admin actions, voids, recorded announcements and pruning (reads, and the
row ↔ engine mapping, are in store.py).

Every write of a live auction happens under its advisory lock (`advisory_lock`, or the bid
writer's `lock_and_read`): the single-writer point across processes. All functions take a
connection (or pool where noted) and run in the caller's transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import asyncpg
import orjson

from auctions.batch import Attempt
from auctions.model import Auction, BidRecord, PaymentState, Rules
from auctions.store import COLUMNS, EPOCH, AuctionRow, auction_row, bid_record, from_ms
from core.db import DATABASE_ERRORS, keeps_session_state, rows_affected


def advisory_key(auction_id: uuid.UUID) -> int:
    """A signed 64-bit advisory-lock key for one auction."""
    return int.from_bytes(auction_id.bytes[:8], "big", signed=True) ^ 0x41554354  # "AUCT"


async def insert(
    conn: asyncpg.Connection, auction: Auction, *, variant_id: uuid.UUID,
    show_id: uuid.UUID | None, unit_held: bool,
) -> AuctionRow:
    r = auction.rules
    row = await conn.fetchrow(
        f"""INSERT INTO auctions (id, seller_id, variant_id, show_id, currency, start_price,
                reserve_price, buy_now_price, increments, duration_ms, soft_close_ms, starts_at,
                ends_at, state, price, buy_now_available, unit_held)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
            RETURNING {COLUMNS}""",
        r.auction_id, r.seller_id, variant_id, show_id, r.currency, r.start_price,
        r.reserve_price, r.buy_now_price, [list(s) for s in r.increments.steps], r.duration_ms,
        r.soft_close_ms, from_ms(r.starts_at), from_ms(auction.ends_at), auction.state.value,
        auction.price, auction.buy_now_available, unit_held,
    )
    return auction_row(row)


async def advisory_lock(conn: asyncpg.Connection, advisory_key: int) -> None:
    """Take the auction's session advisory lock (held past the write and the publication,
    until `advisory_unlock` or the connection's release): the single-writer point across
    processes. Every writer takes it before any row lock, so writers never deadlock, and a
    writer holding it sees every earlier writer's commit in the statements that follow."""
    keeps_session_state(conn)  # the pool's reset releases it should the caller not
    await conn.execute("SELECT pg_advisory_lock($1)", int(advisory_key))


async def advisory_unlock(conn: asyncpg.Connection) -> bool:
    """Release the session advisory locks this connection holds (`advisory_lock`), without
    waiting for the pool's reset. False if that failed (the caller then gives the connection
    back to the pool, whose reset, or closing it, releases them)."""
    if conn.is_closed():
        return False
    try:
        await conn.execute("SELECT pg_advisory_unlock_all()")
    except DATABASE_ERRORS:
        return False
    return True


async def lock(conn: asyncpg.Connection, auction_id: uuid.UUID) -> tuple[AuctionRow, int] | None:
    """Lock the auction row for this transaction and read the database clock (the caller
    holds the advisory lock: `advisory_lock`)."""
    row = await conn.fetchrow(
        f"""SELECT {COLUMNS}, (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS now_ms
            FROM auctions WHERE id = $1 FOR UPDATE""",
        auction_id,
    )
    return None if row is None else (auction_row(row), int(row["now_ms"]))


async def lock_and_read(
    conn: asyncpg.Connection, advisory_key: int, auction_id: uuid.UUID,
    keys: Iterable[tuple[uuid.UUID, uuid.UUID]], *, rules: Rules | None = None,
) -> tuple[AuctionRow, int, dict[tuple[uuid.UUID, uuid.UUID], BidRecord]] | None:
    """Take the auction's session advisory lock (see `advisory_lock`), then read the auction,
    the database clock and the accepted bids already stored for these (bidder, bid_id) pairs
    (idempotent retries): one round trip (`auction_lock_and_read`, migration 0302). The read
    follows the lock, so it sees every earlier writer's work, and no writer can change the
    auction until the lock is released. None if there is no such auction; the lock is held
    either way (also if this raises after the lock was granted): release it. `rules`: the
    auction's rules from an earlier read, reused (see `_row`)."""
    pairs = list(keys)
    keeps_session_state(conn)  # the session advisory lock (see `advisory_lock`)
    row = await conn.fetchrow(
        "SELECT (r.auction).*, r.now_ms, r.known FROM auction_lock_and_read($1, $2, $3, $4) r",
        int(advisory_key), auction_id, [p[0] for p in pairs], [p[1] for p in pairs])
    if row is None:
        return None
    known = {(b["bidder_id"], b["bid_id"]): bid_record(b) for b in row["known"]}
    return auction_row(row, rules), int(row["now_ms"]), known


async def save_state(conn: asyncpg.Connection, a: Auction) -> None:
    """Write the engine state back (the caller holds the row lock)."""
    await conn.execute(
        """UPDATE auctions SET state = $2, outcome = $3, seq = $4, price = $5, leader_id = $6,
               leader_max = $7, bid_count = $8, buy_now_available = $9, ends_at = $10,
               closed_at = $11, cancel_reason = $12, second_max = $13, updated_at = now()
           WHERE id = $1""",
        a.rules.auction_id, a.state.value, a.outcome.value if a.outcome else None, a.seq,
        a.price, a.leader, a.leader_max, a.bid_count, a.buy_now_available, from_ms(a.ends_at),
        from_ms(a.closed_at) if a.closed_at is not None else None, a.cancel_reason,
        a.second_max,
    )


_WRITE_BATCH = """WITH bids AS (
        INSERT INTO auction_bids (auction_id, seq, bidder_id, bid_id, kind, amount,
            price_after, leader_after, ends_at_after, placed_at)
        SELECT $1, b.s, b.u, b.i, b.k, b.a, b.p, b.l,
            'epoch'::timestamptz + b.e * interval '1 millisecond',
            'epoch'::timestamptz + b.t * interval '1 millisecond'
        FROM jsonb_to_recordset($2::text::jsonb) AS b(s bigint, u uuid, i uuid, k text,
            a bigint, p bigint, l uuid, e bigint, t bigint)
    ), attempts AS (
        INSERT INTO auction_bid_attempts (auction_id, bidder_id, bid_id, kind, amount,
            outcome, seq, attempted_at)
        SELECT $1, x.u, x.i, x.k, x.a, x.o, x.s,
            'epoch'::timestamptz + x.t * interval '1 millisecond'
        FROM jsonb_to_recordset($3::text::jsonb) AS x(u uuid, i uuid, k text, a bigint,
            o text, s bigint, t bigint)
    ), announced AS (
        INSERT INTO auction_publications (auction_id, pub_seq, payloads)
        SELECT $1, $16::bigint, $17::jsonb WHERE $16::bigint > 0
    )
    UPDATE auctions SET state = $4, outcome = $5, seq = $6, price = $7,
        leader_id = $8, leader_max = $9, bid_count = $10, buy_now_available = $11,
        ends_at = $12, closed_at = $13, second_max = $15,
        pub_seq = greatest(pub_seq, $16::bigint), updated_at = now()
    WHERE id = $1 AND $14::boolean"""


async def write_batch(
    conn: asyncpg.Connection,
    auction_id: uuid.UUID,
    state: Auction | None,
    records: Sequence[BidRecord],
    attempts: Sequence[Attempt],
    publication: tuple[int, list[dict[str, Any]]] | None = None,
) -> None:
    """Accepted bids, attempt rows, the new state (None: unchanged) and what the commit will
    announce (`(pub_seq, payloads)`, recorded in `auction_publications`) in ONE statement
    (`_WRITE_BATCH`). The rows travel as two JSON texts (times in epoch ms) rather than
    seventeen typed arrays, whose encoding was half the client's CPU for the statement (3
    bids: ~410 → ~210 µs)."""
    await conn.execute(
        _WRITE_BATCH,
        auction_id,
        _json_rows([{"s": r.seq, "u": r.bidder, "i": r.bid_id, "k": r.kind.value,
                     "a": r.amount, "p": r.price_after, "l": r.leader_after,
                     "e": r.ends_at_after, "t": r.at} for r in records]),
        _json_rows([{"u": t.bidder, "i": t.bid_id, "k": t.kind, "a": t.amount,
                     "o": t.outcome, "s": t.seq, "t": t.at} for t in attempts]),
        *_state_args(state),
        publication[0] if publication else 0,
        publication[1] if publication else None,
    )


def _state_args(a: Auction | None) -> tuple[Any, ...]:
    """`_WRITE_BATCH`'s $4..$15: the auction's new state, or placeholders with $14 (apply the
    update) false when it is unchanged."""
    return (
        a.state.value if a else "open",
        a.outcome.value if a and a.outcome else None,
        a.seq if a else 0,
        a.price if a else 0,
        a.leader if a else None,
        a.leader_max if a else 0,
        a.bid_count if a else 0,
        a.buy_now_available if a else False,
        from_ms(a.ends_at) if a else EPOCH,
        from_ms(a.closed_at) if a and a.closed_at is not None else None,
        a is not None,
        a.second_max if a else 0,
    )


def _json_rows(rows: list[dict[str, Any]]) -> str:
    """Rows as JSON text for `jsonb_to_recordset`; ids of any UUID class become strings."""
    return orjson.dumps(rows, default=str).decode()


async def record_publication(
    conn: asyncpg.Connection, auction_id: uuid.UUID, payloads: list[dict[str, Any]]
) -> int:
    """Number and record what this commit will announce (the caller holds the row lock).
    Returns its pub_seq."""
    pub_seq: int = await conn.fetchval(
        """WITH n AS (
               UPDATE auctions SET pub_seq = pub_seq + 1 WHERE id = $1 RETURNING pub_seq
           ), ins AS (
               INSERT INTO auction_publications (auction_id, pub_seq, payloads)
               SELECT $1, pub_seq, $2::jsonb FROM n
           )
           SELECT pub_seq FROM n""",
        auction_id, payloads,
    )
    return pub_seq


async def prune_publications(
    conn: asyncpg.Connection | asyncpg.Pool, *, keep_s: float, limit: int,
) -> int:
    """Delete up to `limit` of the oldest recorded announcements older than `keep_s` (by the
    database clock); returns how many. Rows another pruner is deleting are skipped, so
    processes pruning at once share the work. The bound is `now()`, not the volatile
    `clock_timestamp()`, so the `created_at` index can stop at it (else a call with nothing to
    delete reads every row); rows go by their row ids (a join back by key may be planned as a
    scan of the whole table)."""
    status: str = await conn.execute(
        """DELETE FROM auction_publications WHERE ctid = ANY(ARRAY(
               SELECT ctid FROM auction_publications
               WHERE created_at < now() - make_interval(secs => $1)
               ORDER BY created_at LIMIT $2
               FOR UPDATE SKIP LOCKED))""",
        keep_s, limit,
    )
    return rows_affected(status)


async def prune_attempts(
    conn: asyncpg.Connection | asyncpg.Pool, *, keep_s: float, limit: int,
) -> int:
    """Delete up to `limit` audit rows of bid attempts of auctions that ended (closed or
    cancelled) more than `keep_s` ago; returns how many. Their accepted bids stay in
    `auction_bids`. Rows another pruner is deleting are skipped."""
    status: str = await conn.execute(
        """DELETE FROM auction_bid_attempts WHERE ctid = ANY(ARRAY(
               SELECT t.ctid FROM auctions a
               JOIN auction_bid_attempts t ON t.auction_id = a.id
               WHERE a.closed_at < now() - make_interval(secs => $1)
               LIMIT $2
               FOR UPDATE OF t SKIP LOCKED))""",
        keep_s, limit,
    )
    return rows_affected(status)


async def mark_voided(
    conn: asyncpg.Connection, auction_id: uuid.UUID, seqs: Iterable[int], *, reason: str,
    actor: uuid.UUID,
) -> None:
    await conn.execute(
        """UPDATE auction_bids SET voided_at = now(), void_reason = $3, voided_by = $4
           WHERE auction_id = $1 AND seq = ANY($2::bigint[]) AND voided_at IS NULL""",
        auction_id, list(seqs), reason, actor,
    )


async def admin_action(
    conn: asyncpg.Connection, auction_id: uuid.UUID, *, actor: uuid.UUID, action: str,
    reason: str, seq: int | None = None,
) -> None:
    await conn.execute(
        """INSERT INTO auction_admin_actions (auction_id, actor_id, action, seq, reason)
           VALUES ($1, $2, $3, $4, $5)""",
        auction_id, actor, action, seq, reason,
    )


async def set_settlement(
    conn: asyncpg.Connection, auction_id: uuid.UUID, *, order_id: uuid.UUID,
    payment_state: PaymentState, payment_due_at: int | None,
) -> None:
    await conn.execute(
        """UPDATE auctions SET order_id = $2, payment_state = $3, payment_due_at = $4,
               updated_at = now() WHERE id = $1""",
        auction_id, order_id, payment_state.value,
        from_ms(payment_due_at) if payment_due_at is not None else None,
    )


