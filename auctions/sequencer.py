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

Announcements: what a commit will publish is recorded in the commit itself
(`auction_publications`, numbered by `auctions.pub_seq`) and published right after it as that
numbered announcement (`Publisher.announce`: Redis refuses a number that does not follow the
channel's last one). The publication is sent as the lock is released, so it reaches Redis
long before the next writer (two round trips later) publishes; if the next writer still finds
the previous announcement missing, it waits a few ms, then — that process died, or Redis
failed, between its commit and its publication — publishes the missing ones from PostgreSQL
first; if no later commit comes, the closing scheduler's check (scheduler.py,
`check_announcements`, once a second for announcements 2 s old) publishes it the same way.
Watchers therefore see every commit, in order; a watcher that still sees a seq gap
(Redis lost its data: new epoch) reloads from REST (`GET /v1/auctions/{id}/bids?after=`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import asyncpg

from auctions import engine, store, wire
from auctions.errors import AuctionNotFound, BidQueueFull, BidRejected, InsufficientFunds
from auctions.metrics import STAGES, AuctionMetrics
from auctions.model import Bid, BidKind, BidRecord, Event, Rules
from auctions.ports import Funds, Publisher
from core.db import DATABASE_ERRORS
from core.errors import AppError, IdempotencyKeyReused, RateLimited, ServiceUnavailable

log = logging.getLogger("souk.auctions")


@dataclass(frozen=True, slots=True)
class BidAck:
    """The answer to an accepted bid (also returned, unchanged, to a retry)."""

    seq: int
    amount: int  # the bid as recorded (a one-tap bid resolved to its amount)
    price: int  # the auction price right after it
    ends_at: int
    leading: bool
    replayed: bool = False

    def frame(self) -> dict[str, object]:
        return {
            "accepted": True, "seq": self.seq, "amount": self.amount, "price": self.price,
            "ends_at": self.ends_at, "leading": self.leading, "replayed": self.replayed,
        }


@dataclass(slots=True)
class BidRequest:
    bidder: uuid.UUID
    amount: int
    kind: BidKind
    bid_id: uuid.UUID
    received_at: float = field(default_factory=time.monotonic)
    # Set when it is already refused (rate limit, full queue): only the audit row is written.
    refused: str | None = None
    future: asyncio.Future[BidAck] | None = None
    # The shell's rate-limit check, still running while the bid waits for its batch; the
    # writer settles it before it takes the auction's lock (`settle_checks`).
    checks: asyncio.Future[None] | None = None
    refusal: AppError | None = None  # what a refused bid is answered
    # The wallet balance the bid needs (its amount, the buy-it-now price or the deposit; 0: no
    # check) in the auction's currency: checked against the ledger once per batch.
    needs: int = 0
    currency: str = ""


CHECKS_TIMEOUT_S = 5.0  # longest a batch waits for its bids' checks


async def settle_checks(request: BidRequest) -> None:
    """Wait for the request's checks. A refusal (the rate limit) marks it refused, with the
    error to answer; any other failure is raised (the bid is not recorded)."""
    checks, request.checks = request.checks, None
    if checks is None:
        return
    if checks.cancelled():
        raise ServiceUnavailable()
    try:
        await checks
    except RateLimited as exc:
        exc.__traceback__ = None  # answered through a future: no frames kept alive
        request.refused, request.refusal = exc.code, exc


def advisory_key(auction_id: uuid.UUID) -> int:
    """A signed 64-bit advisory-lock key for one auction."""
    return int.from_bytes(auction_id.bytes[:8], "big", signed=True) ^ 0x41554354  # "AUCT"


OVERFLOW_MAX = 10_000  # audit rows of overload refusals kept per auction for the next batch


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
        self._pool = pool
        self._publisher = publisher
        self._funds = funds  # None: bids are not checked against wallets
        self._max_batch = max_batch
        self._max_queue = max_queue
        self._idle_s = idle_s
        self._publish_timeout_s = publish_timeout_s
        self._writers: dict[uuid.UUID, _Writer] = {}
        self._durable = durable  # False only in the "cost of durability" benchmark
        self._on_closed = on_closed
        self.metrics = metrics or AuctionMetrics()
        self._unaudited_logged = False
        # At most `max_connections` writers hold a pool connection at once (the rest of the
        # pool stays for requests). A writer gives its connection back when its queue empties,
        # or, while another writer waits for one, after the batch that ends its turn (`turn_s`
        # of holding it): hot auctions take turns instead of one starving the rest.
        self._slots = asyncio.Semaphore(max(1, max_connections))
        self._slot_waiters = 0
        self._turn_s = turn_s
        self._funds_cache_s = funds_cache_s

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

    def _writer(self, auction_id: uuid.UUID) -> _Writer:
        writer = self._writers.get(auction_id)
        if writer is None:
            writer = _Writer(self, auction_id)
            self._writers[auction_id] = writer
        return writer

    def _forget(self, auction_id: uuid.UUID, writer: _Writer) -> None:
        if self._writers.get(auction_id) is writer:
            del self._writers[auction_id]

    async def aclose(self) -> None:
        """Stop every writer (queued bids are refused with ServiceUnavailable)."""
        writers = list(self._writers.values())
        self._writers.clear()
        for w in writers:
            await w.stop()


class _Writer:
    def __init__(self, seq: Sequencer, auction_id: uuid.UUID) -> None:
        self._s = seq
        self.auction_id = auction_id
        self._queue: collections.deque[BidRequest] = collections.deque()
        self._queued = asyncio.Event()  # set while the queue holds bids
        self._names: dict[uuid.UUID, str] = {}
        self._rules: Rules | None = None
        # bidder -> (wallet balance read, when: monotonic); see `_short_of_funds`
        self._wallets: dict[uuid.UUID, tuple[int, float]] = {}
        self._overflow: list[BidRequest] = []  # audit rows of bids refused as overloaded
        self._conn: asyncpg.pool.PoolConnectionProxy | None = None
        self._held_since = 0.0  # when the writer took its connection (monotonic)
        # the last batch's announcement, still on its way while the next batch goes on
        self._publishing: asyncio.Future[None] | None = None
        self._task = asyncio.create_task(self._run(), name=f"auction-writer-{auction_id}")

    def put(self, request: BidRequest) -> None:
        """Queue a bid; when `max_queue` bids wait, it is refused with BidQueueFull and only
        its audit row waits (in `overflow`, written with the next batch)."""
        if len(self._queue) < self._s._max_queue:
            self._queue.append(request)
            self._queued.set()
        else:
            if len(self._overflow) >= OVERFLOW_MAX:
                self._s.metrics.unaudited.inc()  # beyond even that: counted, and logged once
                if not self._s._unaudited_logged:
                    self._s._unaudited_logged = True
                    log.error("bid attempts refused without an audit row",
                              extra={"auction_id": str(self.auction_id)})
            else:
                self._overflow.append(replace(
                    request, refused=request.refused or BidQueueFull.code, refusal=None,
                    checks=None, future=None))
            raise BidQueueFull() from None

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        while self._queue:
            _fail(self._queue.popleft(), ServiceUnavailable())

    async def _run(self) -> None:
        try:
            await self._loop()
        finally:
            await self._release()
            if self._publishing is not None:  # bounded by the publish timeout
                await asyncio.wait([self._publishing])

    async def _loop(self) -> None:
        while True:
            if not self._queue:
                self._queued.clear()
                await self._release()  # idle: the connection goes back to the pool
                try:
                    async with asyncio.timeout(self._s._idle_s):
                        await self._queued.wait()
                except TimeoutError:
                    if not self._queue:  # no await between the check and the removal
                        self._s._forget(self.auction_id, self)
                        return
                    continue
            await self._record(self._take())
            if (self._s._slot_waiters and self._conn is not None
                    and time.monotonic() - self._held_since >= self._s._turn_s):
                await self._release()  # another auction's writer waits: its turn

    async def _record(self, batch: list[BidRequest]) -> None:
        """Commit a batch; if it cannot be recorded, every bid in it is answered."""
        try:
            await self._commit(batch)
            return
        except asyncio.CancelledError:
            for r in batch:
                _fail(r, ServiceUnavailable())
            raise
        except AppError as exc:
            for r in batch:
                _fail(r, exc)
        except DATABASE_ERRORS as exc:
            log.warning("bid batch not recorded", extra={"error": repr(exc)})
            for r in batch:
                _fail(r, ServiceUnavailable())
            await self._release()  # a fresh connection for the next batch
        except Exception:  # a bug: answer, and keep the auction's writer alive
            log.exception("bid batch failed", extra={"auction_id": str(self.auction_id)})
            for r in batch:
                _fail(r, ServiceUnavailable())
            await self._release()
        self._s.metrics.batch_failures.inc()

    def _take(self) -> list[BidRequest]:
        """The first queued bid and those after it whose checks are done, up to `max_batch`,
        plus the overflow's audit rows (they ride along, beyond `max_batch`). A bid whose
        rate-limit check is still on its way to Redis waits for the next batch (with the bids
        behind it: arrival order is kept) instead of making this batch wait for it; most
        checks finish while the previous batch is written, so this only trims the tail."""
        queue = self._queue
        batch = [queue.popleft()]
        while queue and len(batch) < self._s._max_batch:
            checks = queue[0].checks
            if checks is not None and not checks.done():
                break
            batch.append(queue.popleft())
        if self._overflow:
            batch.extend(self._overflow)
            self._overflow = []
        return batch

    async def _connection(self) -> asyncpg.pool.PoolConnectionProxy:
        """The writer keeps one pool connection while bids keep coming (no acquire and no
        reset query per batch), within the sequencer's connection budget (`max_connections`)."""
        if self._conn is None:
            s = self._s
            if s._slots.locked():
                s.metrics.connection_waits.inc()
            s._slot_waiters += 1
            try:
                await s._slots.acquire()
            finally:
                s._slot_waiters -= 1
            try:
                self._conn = await s._pool.acquire()
            except BaseException:
                s._slots.release()
                raise
            s.metrics.connections.inc()
            self._held_since = time.monotonic()
        return self._conn

    async def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._s.metrics.connections.dec()
            try:
                await self._s._pool.release(conn)  # its reset also drops any lock still held
            finally:
                self._s._slots.release()

    async def _commit(self, batch: list[BidRequest]) -> None:
        s = self._s
        stage = s.metrics.stage
        t0 = time.perf_counter()
        batch = await self._settle(batch)
        if not batch:
            return
        conn = await self._connection()
        t1 = time.perf_counter()
        short = await self._short_of_funds(conn, batch)
        await self._learn_names(conn, {r.bidder for r in batch if r.refused is None})
        # Under the auction's advisory lock, no transaction: one round trip takes the lock and
        # reads the state and the retried bids, one statement writes the whole batch (and
        # commits: it is one statement).
        t2 = time.perf_counter()
        keys = {(r.bidder, r.bid_id) for r in batch if r.refused is None}
        try:
            locked = await store.lock_and_read(conn, advisory_key(self.auction_id),
                                               self.auction_id, keys, rules=self._rules)
            if locked is None:
                raise AuctionNotFound()
            self._rules = locked[0].auction.rules  # they never change: reused next batch
            t3 = time.perf_counter()
            announcement, answers, closed = await self._apply(conn, batch, short, locked)
        except BaseException:
            if not await store.advisory_unlock(conn):
                await self._release()  # the pool's reset (or closing it) ends the lock
            raise
        t4 = time.perf_counter()
        for step, took in zip(STAGES[:4], (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            stage.labels(step).observe(took)
        s.metrics.batches.inc()
        s.metrics.batch_size.observe(len(batch))
        # The batch is committed: unlock (the next writer may go) and publish (ours reaches
        # Redis long before the next writer can publish), then answer while both are on their
        # way — the answers wait for neither reply (the bids are durable; a publication that
        # fails is filled in by the next commit), only for both requests to be sent. The next
        # batch waits for the unlock's reply (same connection), not for the publication's: the
        # next announcement waits for this one instead.
        unlocking = asyncio.ensure_future(store.advisory_unlock(conn))
        self._publishing = asyncio.ensure_future(self._announce(self._publishing, announcement))
        await asyncio.sleep(0)  # both run up to their first wait for a reply
        if s._durable:
            self._answer(answers)
        if not await unlocking:
            await self._release()
        stage.labels("unlock").observe(time.perf_counter() - t4)
        if closed and s._on_closed is not None:
            s._on_closed(self.auction_id)

    async def _announce(self, previous: asyncio.Future[None] | None,
                        announcement: Announcement | None) -> None:
        """Publish after the writer's previous announcement is out (they stay in order)."""
        if previous is not None:
            await asyncio.wait([previous])  # whatever became of it
        if announcement is None:
            return
        started = time.perf_counter()
        s = self._s
        await announce(s._pool, s._publisher, self.auction_id, announcement,
                       timeout_s=s._publish_timeout_s)
        s.metrics.stage.labels("publish").observe(time.perf_counter() - started)

    def _answer(self, answers: list[tuple[BidRequest, BidAck | BaseException]]) -> None:
        """Wake each bidder with its answer, and time it from the bid's arrival."""
        now = time.monotonic()
        ack = self._s.metrics.ack
        for request, answer in answers:
            ack.observe(now - request.received_at)
            if isinstance(answer, BaseException):
                _fail(request, answer)
            elif request.future is not None and not request.future.done():
                request.future.set_result(answer)

    @staticmethod
    async def _settle(batch: list[BidRequest]) -> list[BidRequest]:
        """Wait for the batch's checks (most finished while the bids waited); bids whose
        checks failed for another reason than a refusal are answered and left out."""
        pending = [r.checks for r in batch if r.checks is not None and not r.checks.done()]
        if pending:
            await asyncio.wait(pending, timeout=CHECKS_TIMEOUT_S)
        kept = []
        for r in batch:
            if r.checks is not None and not r.checks.done():  # Redis or the ledger hangs
                r.checks.cancel()
                r.checks = None
                _fail(r, ServiceUnavailable())
                continue
            try:
                await settle_checks(r)
            except Exception as exc:
                log.warning("bid checks failed", extra={"error": repr(exc)})
                _fail(r, exc if isinstance(exc, AppError) else ServiceUnavailable())
                continue
            kept.append(r)
        return kept

    async def _short_of_funds(self, conn: asyncpg.Connection,
                              batch: list[BidRequest]) -> set[int]:
        """The bids (by id()) whose bidder's wallet does not cover what they need: one ledger
        query for the whole batch, before the auction is locked. A balance read less than
        `funds_cache_s` ago that covers the bid is trusted without asking again (a hot
        auction's bidders bid again and again: most batches then skip the query); a bid it
        does not cover always reads the ledger again, so a top-up counts at once. The check is
        a check, not a reservation, either way (see service.py)."""
        s = self._s
        wanting = [r for r in batch if r.refused is None and r.needs > 0]
        if not wanting or s._funds is None:
            return set()
        now = time.monotonic()
        wallets, ttl = self._wallets, s._funds_cache_s
        unsure = [r for r in wanting
                  if (w := wallets.get(r.bidder)) is None or now - w[1] >= ttl or w[0] < r.needs]
        if not unsure:
            s.metrics.funds_checks.labels("cache").inc()
            return set()
        s.metrics.funds_checks.labels("ledger").inc()
        bidders = sorted({r.bidder for r in unsure})
        have = await s._funds.available_many(conn, bidders, unsure[0].currency)
        if ttl > 0:
            if len(wallets) > 10_000:
                wallets.clear()
            for bidder in bidders:
                wallets[bidder] = (have.get(bidder, 0), now)
        return {id(r) for r in unsure if have.get(r.bidder, 0) < r.needs}

    async def _learn_names(self, conn: asyncpg.Connection, people: set[uuid.UUID]) -> None:
        """Display names for announcements (leaders), looked up before taking the lock where
        possible: this batch's bidders."""
        names = self._names
        # not `people - names.keys()`: that walks every name known (up to 10,000) per batch
        missing = [p for p in people if p not in names]
        if missing:
            if len(self._names) > 10_000:
                self._names.clear()
            self._names.update(await store.display_names(conn, missing))

    async def _apply(
        self, conn: asyncpg.Connection, batch: list[BidRequest], short: set[int],
        locked: tuple[store.AuctionRow, int, dict[tuple[uuid.UUID, uuid.UUID], BidRecord]],
    ) -> tuple[Announcement | None, list[tuple[BidRequest, BidAck | BaseException]], bool]:
        """Run the engine over the batch from the locked state, write it; returns what to
        announce, the answers and whether the auction closed."""
        row, now, known = locked
        state = row.auction
        before_state = state.state
        records: list[BidRecord] = []
        attempts: list[store.Attempt] = []
        events: list[Event] = []
        answers: list[tuple[BidRequest, BidAck | BaseException]] = []
        for r in batch:
            if r.refused is not None:
                attempts.append(store.Attempt(r.bidder, r.bid_id, r.kind.value, r.amount,
                                              r.refused, None, now))
                if r.refusal is not None:
                    answers.append((r, r.refusal))
                continue
            previous = known.get((r.bidder, r.bid_id))
            if previous is not None:
                answer: BidAck | BaseException = _replayed(previous, r)
                outcome = "duplicate" if isinstance(answer, BidAck) else answer_code(answer)
                attempts.append(store.Attempt(r.bidder, r.bid_id, r.kind.value, r.amount,
                                              outcome, previous.seq, now))
                answers.append((r, answer))
                continue
            if id(r) in short:
                attempts.append(store.Attempt(r.bidder, r.bid_id, r.kind.value, r.amount,
                                              InsufficientFunds.code, None, now))
                answers.append((r, InsufficientFunds()))
                continue
            try:
                placed = engine.place_bid(state, Bid(r.bidder, r.amount, r.kind, r.bid_id), now)
            except BidRejected as exc:
                # The refusal goes back through a future: drop the traceback, which would tie
                # this frame (and the whole batch) into a cycle only the GC's full pass frees.
                exc.__traceback__ = None
                attempts.append(store.Attempt(r.bidder, r.bid_id, r.kind.value, r.amount,
                                              exc.code, None, now))
                answers.append((r, exc))
                continue
            state = placed.state
            rec = placed.record
            records.append(rec)
            known[(r.bidder, r.bid_id)] = rec
            events.extend(placed.events)
            attempts.append(store.Attempt(r.bidder, r.bid_id, r.kind.value, r.amount,
                                          "accepted", rec.seq, now))
            answers.append((r, _ack(rec, state.leader)))
        changed = bool(records) or state.state is not before_state
        announcement: Announcement | None = None
        if events:
            await self._learn_names(conn, wire.people(events))  # a leader from elsewhere
            announcement = (row.pub_seq + 1,
                            wire.publications(self.auction_id, events, self._names))
        closed = state.state is not before_state and state.state not in engine.LIVE_STATES
        if not self._s._durable:  # benchmark only ("cost of durability"): answer, then commit
            self._answer(answers)
        await store.write_batch(conn, self.auction_id, state if changed else None, records,
                                attempts, announcement)
        outcomes = self._s.metrics.attempts
        for outcome, n in collections.Counter(t.outcome for t in attempts).items():
            outcomes.labels(outcome).inc(n)
        return announcement, answers, closed


# What one commit announces on `auction:{id}`: its number (auctions.pub_seq) and payloads.
Announcement = tuple[int, list[dict[str, Any]]]

REPAIR_MAX = 1_000  # most missing announcements filled in from PostgreSQL at once
# Waits before publishing again when the previous writer's announcement is not out yet (~20 ms
# in all), before filling it in from PostgreSQL.
GAP_RETRY_S = (0.002, 0.005, 0.013)


async def announce(
    pool: asyncpg.Pool, publisher: Publisher, auction_id: uuid.UUID,
    announcement: Announcement | None, *, timeout_s: float,
) -> Literal["published", "out", "failed"]:
    """Publish a committed announcement. If the channel's last announcement is not the one
    before it, the previous writer's publication is late (it is sent as that writer unlocks)
    or lost: wait a little (`GAP_RETRY_S`); if it is still missing — its process died, or
    Redis failed, between its commit and its publication — publish the missing ones first
    from `auction_publications`. Failures are logged: the bids are durable, and the next
    commit (or the scheduler's check, `CloseScheduler.check_announcements`) fills the gap.
    Returns "published" (this call published it), "out" (it was out already; or nothing to
    announce) or "failed"."""
    if announcement is None:
        return "out"
    number, payloads = announcement
    topic = wire.channel(auction_id)
    try:
        async with asyncio.timeout(timeout_s):
            result = await publisher.announce(topic, number, payloads)
            for delay in GAP_RETRY_S:
                if result.status != "gap":
                    break
                await asyncio.sleep(delay)
                result = await publisher.announce(topic, number, payloads)
            if result.status != "gap":
                return "published" if result.status == "published" else "out"
            async with pool.acquire() as conn:
                missing = await store.publications_between(
                    conn, auction_id, result.last, number, limit=REPAIR_MAX)
            log.warning("auction announcements were missing; publishing them now",
                        extra={"auction_id": str(auction_id), "missing": len(missing)})
            complete = len(missing) == number - result.last - 1
            for n, items in missing:
                await publisher.announce(topic, n, items, after_gap=not complete)
                complete = True  # whatever came before the first recorded one is gone
            await publisher.announce(topic, number, payloads, after_gap=True)
            return "published"
    except Exception as exc:  # the bids are durable; the next commit fills the gap
        log.warning("auction publish failed", extra={"error": repr(exc)})
        return "failed"


def _ack(rec: BidRecord, leader: uuid.UUID | None, *, replayed: bool = False) -> BidAck:
    return BidAck(
        seq=rec.seq, amount=rec.amount, price=rec.price_after, ends_at=rec.ends_at_after,
        leading=rec.leader_after == rec.bidder, replayed=replayed,
    )


def _replayed(previous: BidRecord, r: BidRequest) -> BidAck | BaseException:
    """The first answer again, if the retry is the same bid; else the key was reused."""
    same_kind = previous.kind is r.kind or (
        r.kind is BidKind.NEXT and previous.kind is BidKind.EXACT
    )
    same_amount = previous.amount == r.amount or r.kind in (BidKind.NEXT, BidKind.BUY_NOW)
    if not (same_kind and same_amount):
        return IdempotencyKeyReused("This bid_id was used for a different bid.")
    return _ack(previous, None, replayed=True)


def answer_code(exc: BaseException) -> str:
    return exc.code if isinstance(exc, AppError) else "internal_error"


def _fail(request: BidRequest, exc: BaseException) -> None:
    if request.future is not None and not request.future.done():
        request.future.set_exception(exc)


async def exclusive(
    pool: asyncpg.Pool,
    publisher: Publisher,
    auction_id: uuid.UUID,
    work: Callable[[asyncpg.Connection, store.AuctionRow, int], Awaitable[list[Event]]],
) -> list[Event]:
    """Run `work(conn, row, now)` as the auction's single writer (advisory lock, transaction,
    row lock), commit, then publish the events it returns — the same discipline as bid batches,
    so admin actions and closing interleave with bids in one order. Raises AuctionNotFound."""
    async with pool.acquire() as conn:
        await store.advisory_lock(conn, advisory_key(auction_id))  # before any row lock
        announcement: Announcement | None = None
        async with conn.transaction():
            locked = await store.lock(conn, auction_id)
            if locked is None:
                raise AuctionNotFound()
            events = await work(conn, locked[0], locked[1])
            if events:
                names = await store.display_names(conn, wire.people(events))
                payloads = wire.publications(auction_id, events, names)
                number = await store.record_publication(conn, auction_id, payloads)
                announcement = (number, payloads)
        await announce(pool, publisher, auction_id, announcement, timeout_s=5.0)
        return events
