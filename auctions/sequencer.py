"""Durable, ordered bid sequencing with group commit.

Each process keeps one writer task per auction it is receiving bids for. Bids queue in memory
(bounded); the writer takes what is queued (up to `max_batch`; it stops at a bid whose
rate-limit check has not come back yet, which goes with the next batch) and records it with ONE
statement, on a pool connection it keeps while bids keep coming — within the process's budget
for writers (`max_connections`, AUCTION_WRITER_CONNECTIONS: half the pool by default, the rest
stays for requests); while another auction's writer waits for a connection, a writer gives its
back after the batch that ends its turn (`turn_s`, 20 ms of holding it), so hot auctions take
turns instead of one starving the rest:

    the rate-limit checks of the batch's bids (started as each bid arrived) settle
    one ledger query: the wallets of the batch's bidders   -- before the lock; skipped when
                   every bid is covered by a balance read < 1 s ago (`funds_cache_s`)
    display names of the batch's bidders not seen yet      -- before the lock, rarely
    pg_advisory_lock(auction), then SELECT auction, the DB clock, the (bidder, bid_id) pairs
                   already accepted              -- one round trip (a function, migration
                                                 -- 0302); the lock is the single-writer point
                                                 -- across processes, taken before any row
                                                 -- lock; the read's snapshot follows the lock:
                                                 -- it sees every earlier writer's commit
    engine.place_bid for each bid, in arrival order  -- pure rules, one `now` per batch
    one statement: INSERT accepted bids, INSERT attempts, INSERT the commit's announcement,
                   UPDATE auction (unnest arrays)    -- atomic, and committed when it returns
    pg_advisory_unlock_all()  and  publish the announcement (one Redis call), together
    answer the bidders                           -- once both are sent, not waiting for
                                                 -- either reply; the next batch waits for
                                                 -- the unlock's, the next announcement for
                                                 -- this one

So an acknowledged bid is committed, and its broadcast was sent to the bus before the ack (when
the previous writer's announcement is missing, it follows shortly: see "Announcements").
The auction is locked for three round trips per batch. While one batch is written, the next one
accumulates, so throughput grows with load while latency stays about one write (no artificial
batching window). Two processes writing the same auction serialise on the advisory lock; each
batch sees the state the previous one wrote, so seq stays gapless and identical everywhere.
Other writers (closing, admin actions: `exclusive`) take the same lock, then a transaction.

Nothing is kept in Redis here: a Redis loss cannot lose or reorder a bid (see BENCHMARKS.md,
"Auctions", for the measured alternative that sequences in a Redis function).

Time: the batch takes `now` from the database clock when it locks the row, so every process
agrees; a bid that arrives just before the end but is sequenced after it is refused
(`auction_not_open`) — the sequencer's clock, not arrival, decides.

Announcements: what a commit will publish is recorded in the commit itself and published right
after it, in order, with lost ones filled in from PostgreSQL: see announcements.py.

Modules: this one is the entry point (`Sequencer`); writer.py holds one auction's writer (the
queue, the connection, the steps above); batch.py the pure decisions of a batch; checks.py the
bid request and its rate-limit and funds checks; announcements.py publishing; writes.py the SQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable

import asyncpg

from auctions.batch import BidAck
from auctions.checks import BidRequest
from auctions.errors import BidQueueFull
from auctions.metrics import AuctionMetrics
from auctions.ports import Funds, Publisher
from auctions.writer import Budget, Writer, WriterConfig

__all__ = ["BidAck", "BidRequest", "Sequencer"]


class Sequencer:
    """Per-process entry point: `await submit(auction_id, request)` → BidAck or raises."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        publisher: Publisher,
        *,
        funds: Funds | None = None,
        max_batch: int = 500,
        max_queue: int = 5_000,
        idle_s: float = 30.0,
        publish_timeout_s: float = 2.0,
        durable: bool = True,
        on_closed: Callable[[uuid.UUID], None] | None = None,
        metrics: AuctionMetrics | None = None,
        max_connections: int = 10,
        turn_s: float = 0.02,
        funds_cache_s: float = 1.0,
    ) -> None:
        self.metrics = metrics or AuctionMetrics()
        self.config = WriterConfig(
            pool=pool, publisher=publisher, metrics=self.metrics, funds=funds,
            max_batch=max_batch, max_queue=max_queue, idle_s=idle_s,
            publish_timeout_s=publish_timeout_s, durable=durable, turn_s=turn_s,
            funds_cache_s=funds_cache_s,
        )
        self._budget = Budget(max_connections, self.metrics)
        self._writers: dict[uuid.UUID, Writer] = {}
        self._on_closed = on_closed

    async def submit(self, auction_id: uuid.UUID, request: BidRequest) -> BidAck:
        """Queue a bid and wait until it is committed (or refused). Raises BidRejected
        subclasses, AuctionNotFound, IdempotencyKeyReused (same bid_id, different bid),
        BidQueueFull when the auction has `max_queue` bids waiting, ServiceUnavailable when the
        database fails."""
        request.future = asyncio.get_running_loop().create_future()
        self._writer(auction_id).put(request)
        try:
            return await request.future
        finally:
            # A refusal raised here carries a traceback through this frame, which holds the
            # request, whose future holds the refusal: a reference cycle per refused bid, which
            # only the collector frees (most refusals lived long enough to reach generation 1,
            # whose collections then took ~60 ms). Unhook the future so refcounting frees it.
            request.future = None

    def on_closed(self, callback: Callable[[uuid.UUID], None]) -> None:
        """Call `callback(auction_id)` after a batch closed an auction (buy it now)."""
        self._on_closed = callback

    def record_refusal(self, auction_id: uuid.UUID, request: BidRequest) -> None:
        """Audit a bid the shell refused before sequencing (with the next batch)."""
        with contextlib.suppress(BidQueueFull):  # then it is in the writer's overflow
            self._writer(auction_id).put(request)

    def _writer(self, auction_id: uuid.UUID) -> Writer:
        writer = self._writers.get(auction_id)
        if writer is None:
            writer = Writer(self.config, self._budget, auction_id,
                            on_idle=self._forget, on_closed=self._closed)
            self._writers[auction_id] = writer
        return writer

    def _forget(self, writer: Writer) -> None:
        if self._writers.get(writer.auction_id) is writer:
            del self._writers[writer.auction_id]

    def _closed(self, auction_id: uuid.UUID) -> None:
        if self._on_closed is not None:
            self._on_closed(auction_id)

    async def aclose(self) -> None:
        """Stop every writer (queued bids are refused with ServiceUnavailable)."""
        writers = list(self._writers.values())
        self._writers.clear()
        for w in writers:
            await w.stop()
