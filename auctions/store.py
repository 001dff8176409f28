"""PostgreSQL access for auctions: rows ↔ engine values, batched writes, history and audit.

Times are stored as timestamptz and carried as integer ms since the epoch in the engine. All
functions take a connection (or pool where noted) and run in the caller's transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson

from auctions.model import (
    Auction,
    BidKind,
    BidRecord,
    IncrementTable,
    Outcome,
    Rules,
    State,
)
from core.db import DATABASE_ERRORS, rows_affected

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)

_COLUMNS = """id, seller_id, variant_id, show_id, currency, start_price, reserve_price,
    buy_now_price, increments, duration_ms, soft_close_ms, starts_at, ends_at, state, outcome,
    seq, price, leader_id, leader_max, second_max, bid_count, buy_now_available, closed_at,
    cancel_reason, order_id, payment_state, payment_due_at, created_at, pub_seq, unit_held"""


def to_ms(value: datetime) -> int:
    return (value - EPOCH) // _MS


def from_ms(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


def iso(ms: int | None) -> str | None:
    """RFC 3339 UTC with milliseconds, for HTTP bodies."""
    if ms is None:
        return None
    return from_ms(ms).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class AuctionRow:
    """An auction as stored: the engine state plus what only the shell needs."""

    auction: Auction
    variant_id: uuid.UUID
    show_id: uuid.UUID | None
    order_id: uuid.UUID | None
    payment_state: str | None
    payment_due_at: int | None
    created_at: int
    pub_seq: int = 0  # number of the last commit that announced something (migration 0301)
    unit_held: bool = False  # a unit of the variant is reserved for it (migration 0304)


def _row(r: asyncpg.Record, rules: Rules | None = None) -> AuctionRow:
    """`rules`: the auction's rules read earlier (they never change after creation), to reuse
    instead of building and checking them again from the row."""
    if rules is None or rules.auction_id != r["id"]:
        rules = _rules(r)
    auction = Auction(
        rules=rules,
        state=State(r["state"]),
        ends_at=to_ms(r["ends_at"]),
        seq=r["seq"],
        price=r["price"],
        leader=r["leader_id"],
        leader_max=r["leader_max"],
        second_max=r["second_max"],
        bid_count=r["bid_count"],
        buy_now_available=r["buy_now_available"],
        outcome=Outcome(r["outcome"]) if r["outcome"] else None,
        closed_at=to_ms(r["closed_at"]) if r["closed_at"] else None,
        cancel_reason=r["cancel_reason"],
    )
    return AuctionRow(
        auction=auction,
        variant_id=r["variant_id"],
        show_id=r["show_id"],
        order_id=r["order_id"],
        payment_state=r["payment_state"],
        payment_due_at=to_ms(r["payment_due_at"]) if r["payment_due_at"] else None,
        created_at=to_ms(r["created_at"]),
        pub_seq=r["pub_seq"],
        unit_held=r["unit_held"],
    )


def _rules(r: asyncpg.Record) -> Rules:
    return Rules(
        auction_id=r["id"],
        seller_id=r["seller_id"],
        currency=r["currency"],
        start_price=r["start_price"],
        starts_at=to_ms(r["starts_at"]),
        duration_ms=r["duration_ms"],
        soft_close_ms=r["soft_close_ms"],
        reserve_price=r["reserve_price"],
        buy_now_price=r["buy_now_price"],
        increments=IncrementTable(tuple((int(a), int(b)) for a, b in r["increments"])),
    )


async def now_ms(conn: asyncpg.Connection | asyncpg.Pool) -> int:
    """The database server's clock: the one clock every process agrees on."""
    value: int = await conn.fetchval(
        "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint"
    )
    return value


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
            RETURNING {_COLUMNS}""",
        r.auction_id, r.seller_id, variant_id, show_id, r.currency, r.start_price,
        r.reserve_price, r.buy_now_price, [list(s) for s in r.increments.steps], r.duration_ms,
        r.soft_close_ms, from_ms(r.starts_at), from_ms(auction.ends_at), auction.state.value,
        auction.price, auction.buy_now_available, unit_held,
    )
    return _row(row)


async def get(conn: asyncpg.Connection | asyncpg.Pool, auction_id: uuid.UUID) -> AuctionRow | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM auctions WHERE id = $1", auction_id)
    return _row(row) if row else None


async def advisory_lock(conn: asyncpg.Connection, advisory_key: int) -> None:
    """Take the auction's session advisory lock (held past the write and the publication,
    until `advisory_unlock` or the connection's release): the single-writer point across
    processes. Every writer takes it before any row lock, so writers never deadlock, and a
    writer holding it sees every earlier writer's commit in the statements that follow."""
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
        f"""SELECT {_COLUMNS}, (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS now_ms
            FROM auctions WHERE id = $1 FOR UPDATE""",
        auction_id,
    )
    return None if row is None else (_row(row), int(row["now_ms"]))


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
    row = await conn.fetchrow(
        "SELECT (r.auction).*, r.now_ms, r.known FROM auction_lock_and_read($1, $2, $3, $4) r",
        int(advisory_key), auction_id, [p[0] for p in pairs], [p[1] for p in pairs])
    if row is None:
        return None
    known = {(b["bidder_id"], b["bid_id"]): _record(b) for b in row["known"]}
    return _row(row, rules), int(row["now_ms"]), known


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


async def write_batch(
    conn: asyncpg.Connection,
    auction_id: uuid.UUID,
    state: Auction | None,
    records: Sequence[BidRecord],
    attempts: Sequence[Attempt],
    publication: tuple[int, list[dict[str, Any]]] | None = None,
) -> None:
    """Accepted bids, attempt rows, the new state (None: unchanged) and what the commit will
    announce (`(pub_seq, payloads)`, recorded in `auction_publications`) in ONE statement.
    The rows travel as two JSON texts (times in epoch ms) rather than seventeen typed arrays,
    whose encoding was half the client's CPU for the statement (3 bids: ~410 → ~210 µs)."""
    a = state
    await conn.execute(
        """WITH bids AS (
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
           WHERE id = $1 AND $14::boolean""",
        auction_id,
        _json_rows([{"s": r.seq, "u": r.bidder, "i": r.bid_id, "k": r.kind.value,
                     "a": r.amount, "p": r.price_after, "l": r.leader_after,
                     "e": r.ends_at_after, "t": r.at} for r in records]),
        _json_rows([{"u": t.bidder, "i": t.bid_id, "k": t.kind, "a": t.amount,
                     "o": t.outcome, "s": t.seq, "t": t.at} for t in attempts]),
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
        publication[0] if publication else 0,
        publication[1] if publication else None,
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


async def publications_between(
    conn: asyncpg.Connection, auction_id: uuid.UUID, after: int, before: int, *, limit: int
) -> list[tuple[int, list[dict[str, Any]]]]:
    """Recorded announcements with after < pub_seq < before, in order (at most `limit`)."""
    rows = await conn.fetch(
        """SELECT pub_seq, payloads FROM auction_publications
           WHERE auction_id = $1 AND pub_seq > $2 AND pub_seq < $3
           ORDER BY pub_seq LIMIT $4""",
        auction_id, after, before, limit,
    )
    return [(r["pub_seq"], list(r["payloads"])) for r in rows]


async def latest_publications(
    conn: asyncpg.Connection | asyncpg.Pool, *, after: datetime, quiet_s: float,
) -> tuple[list[tuple[uuid.UUID, int, list[dict[str, Any]]]], datetime]:
    """Each auction's last announcement recorded after `after` and at least `quiet_s` ago (its
    writer has had that long to publish it), as (auction, pub_seq, payloads); and the bound
    used (by the database clock): pass it as `after` next time to see each one once. A
    recording that commits more than `quiet_s` after its transaction began can slip under the
    bound: the auction's next commit or its close still finds it (`sequencer.announce`)."""
    rows = await conn.fetch(
        """WITH bound AS (SELECT clock_timestamp() - make_interval(secs => $2) AS upto),
           latest AS (
               SELECT DISTINCT ON (p.auction_id) p.auction_id, p.pub_seq, p.payloads
               FROM auction_publications p, bound
               WHERE p.created_at > $1 AND p.created_at <= bound.upto
               ORDER BY p.auction_id, p.pub_seq DESC
           )
           SELECT bound.upto, latest.* FROM bound LEFT JOIN latest ON true""",
        after, quiet_s,
    )
    found = [(r["auction_id"], r["pub_seq"], list(r["payloads"]))
             for r in rows if r["auction_id"] is not None]
    upto: datetime = rows[0]["upto"]
    return found, upto


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


@dataclass(frozen=True, slots=True)
class Attempt:
    bidder: uuid.UUID
    bid_id: uuid.UUID | None
    kind: str
    amount: int | None
    outcome: str
    seq: int | None
    at: int


def _record(r: asyncpg.Record) -> BidRecord:
    return BidRecord(
        seq=r["seq"], bidder=r["bidder_id"], bid_id=r["bid_id"], kind=BidKind(r["kind"]),
        amount=r["amount"], at=to_ms(r["placed_at"]), price_after=r["price_after"],
        leader_after=r["leader_after"], ends_at_after=to_ms(r["ends_at_after"]),
    )



async def history(
    conn: asyncpg.Connection | asyncpg.Pool, auction_id: uuid.UUID
) -> tuple[list[BidRecord], frozenset[int]]:
    """Every accepted bid in seq order, and the seqs that were voided."""
    rows = await conn.fetch(
        "SELECT * FROM auction_bids WHERE auction_id = $1 ORDER BY seq", auction_id
    )
    voided = frozenset(r["seq"] for r in rows if r["voided_at"] is not None)
    return [_record(r) for r in rows], voided


async def bid_page(
    conn: asyncpg.Pool | asyncpg.Connection, auction_id: uuid.UUID, *, after: int, limit: int
) -> list[dict[str, Any]]:
    """Public accepted-bid history: no maxima (only the price each bid produced)."""
    rows = await conn.fetch(
        """SELECT b.seq, b.price_after, b.leader_after, u.display_name, b.placed_at,
                  b.ends_at_after, b.voided_at, b.void_reason
           FROM auction_bids b LEFT JOIN users u ON u.id = b.leader_after
           WHERE b.auction_id = $1 AND b.seq > $2 ORDER BY b.seq LIMIT $3""",
        auction_id, after, limit,
    )
    return [
        {
            "seq": r["seq"],
            "price": r["price_after"],
            "leader": r["display_name"],
            "leader_id": str(r["leader_after"]),
            "placed_at": iso(to_ms(r["placed_at"])),
            "ends_at": iso(to_ms(r["ends_at_after"])),
            "voided": r["voided_at"] is not None,
            "void_reason": r["void_reason"],
        }
        for r in rows
    ]


async def attempt_page(
    conn: asyncpg.Pool | asyncpg.Connection, auction_id: uuid.UUID, *, after: int, limit: int
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT id, bidder_id, bid_id, kind, amount, outcome, seq, attempted_at
           FROM auction_bid_attempts WHERE auction_id = $1 AND id > $2 ORDER BY id LIMIT $3""",
        auction_id, after, limit,
    )
    return [
        {
            "id": r["id"],
            "bidder_id": str(r["bidder_id"]),
            "bid_id": str(r["bid_id"]) if r["bid_id"] else None,
            "kind": r["kind"],
            "amount": r["amount"],
            "outcome": r["outcome"],
            "seq": r["seq"],
            "at": iso(to_ms(r["attempted_at"])),
        }
        for r in rows
    ]


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


async def display_names(
    conn: asyncpg.Connection | asyncpg.Pool, ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, str]:
    wanted = list(set(ids))
    if not wanted:
        return {}
    rows = await conn.fetch(
        "SELECT id, display_name FROM users WHERE id = ANY($1::uuid[])", wanted
    )
    return {r["id"]: r["display_name"] for r in rows}


async def due_ids(
    conn: asyncpg.Pool | asyncpg.Connection, *, limit: int, exclude: Sequence[uuid.UUID] = ()
) -> list[uuid.UUID]:
    """Live auctions whose end has passed (by the database clock), oldest first."""
    rows = await conn.fetch(
        """SELECT id FROM auctions WHERE state IN ('scheduled', 'open')
             AND ends_at <= clock_timestamp() AND NOT (id = ANY($2::uuid[]))
           ORDER BY ends_at LIMIT $1""",
        limit,
        list(exclude),
    )
    return [r["id"] for r in rows]


async def unsettled_ids(
    conn: asyncpg.Pool | asyncpg.Connection, *, limit: int, exclude: Sequence[uuid.UUID] = ()
) -> list[uuid.UUID]:
    """Sold auctions still needing their order or payment step."""
    rows = await conn.fetch(
        """SELECT id FROM auctions
           WHERE state = 'closed' AND outcome = 'sold'
             AND (order_id IS NULL OR payment_state = 'awaiting_payment')
             AND NOT (id = ANY($2::uuid[]))
           ORDER BY closed_at LIMIT $1""",
        limit,
        list(exclude),
    )
    return [r["id"] for r in rows]


async def set_settlement(
    conn: asyncpg.Connection, auction_id: uuid.UUID, *, order_id: uuid.UUID,
    payment_state: str, payment_due_at: int | None,
) -> None:
    await conn.execute(
        """UPDATE auctions SET order_id = $2, payment_state = $3, payment_due_at = $4,
               updated_at = now() WHERE id = $1""",
        auction_id, order_id, payment_state,
        from_ms(payment_due_at) if payment_due_at is not None else None,
    )


async def list_page(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    show_id: uuid.UUID | None,
    states: Sequence[str] | None,
    after_id: uuid.UUID | None,
    limit: int,
) -> list[AuctionRow]:
    """Auctions newest first, filtered by show and states; keyset paging after the auction
    `after_id` (exact timestamps compared in the database)."""
    rows = await conn.fetch(
        """SELECT * FROM auctions
           WHERE ($1::uuid IS NULL OR show_id = $1)
             AND ($2::text[] IS NULL OR state = ANY($2::text[]))
             AND ($3::uuid IS NULL
                  OR (created_at, id) < (SELECT created_at, id FROM auctions WHERE id = $3))
           ORDER BY created_at DESC, id DESC LIMIT $4""",
        show_id,
        list(states) if states else None,
        after_id,
        limit,
    )
    return [_row(r) for r in rows]
