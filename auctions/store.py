"""PostgreSQL reads of auctions: rows ↔ engine values, the auction, its history, bid and
attempt pages, names, the scheduler's due lists and recorded announcements (writes are in
writes.py).

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

from auctions.model import (
    Auction,
    BidKind,
    BidRecord,
    IncrementTable,
    Outcome,
    PaymentState,
    Rules,
    State,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)

COLUMNS = """id, seller_id, variant_id, show_id, currency, start_price, reserve_price,
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
    payment_state: PaymentState | None
    payment_due_at: int | None
    created_at: int
    pub_seq: int = 0  # number of the last commit that announced something (migration 0301)
    unit_held: bool = False  # a unit of the variant is reserved for it (migration 0304)


def auction_row(r: asyncpg.Record, rules: Rules | None = None) -> AuctionRow:
    """`rules`: the auction's rules read earlier (they never change after creation), to reuse
    instead of building and checking them again from the row."""
    if rules is None or rules.auction_id != r["id"]:
        rules = rules_of(r)
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
        payment_state=PaymentState(r["payment_state"]) if r["payment_state"] else None,
        payment_due_at=to_ms(r["payment_due_at"]) if r["payment_due_at"] else None,
        created_at=to_ms(r["created_at"]),
        pub_seq=r["pub_seq"],
        unit_held=r["unit_held"],
    )


def rules_of(r: asyncpg.Record) -> Rules:
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


async def get(conn: asyncpg.Connection | asyncpg.Pool, auction_id: uuid.UUID) -> AuctionRow | None:
    row = await conn.fetchrow(f"SELECT {COLUMNS} FROM auctions WHERE id = $1", auction_id)
    return auction_row(row) if row else None


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
    bound: the auction's next commit or its close still finds it (`announcements.announce`)."""
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


def bid_record(r: asyncpg.Record) -> BidRecord:
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
    return [bid_record(r) for r in rows], voided


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


async def show_has_live_auction(
    conn: asyncpg.Pool | asyncpg.Connection, show_id: uuid.UUID
) -> bool:
    """Whether the show has an auction scheduled or open."""
    found = await conn.fetchval(
        "SELECT 1 FROM auctions WHERE show_id = $1 AND state IN ('scheduled', 'open')", show_id
    )
    return found is not None


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
    return [auction_row(r) for r in rows]
