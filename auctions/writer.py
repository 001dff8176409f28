"""One auction's bid writer: a queue of bids, and a task that records them in batches.

The writer takes what is queued (up to `max_batch`; it stops at a bid whose rate-limit check
has not come back yet, which goes with the next batch) and records it with ONE statement, on a
pool connection it keeps while bids keep coming — within the process's budget for writers
(`Budget`); the steps of a batch are in sequencer.py's module doc. The decisions themselves are
pure (`batch.decide`); the checks are settled in checks.py; the announcement goes out through
announcements.py.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace

import asyncpg

from auctions import batch as decisions
from auctions import checks, store, wire, writes
from auctions.announcements import Announcement, announce
from auctions.checks import BidRequest
from auctions.errors import AuctionNotFound, BidQueueFull
from auctions.metrics import STAGES, AuctionMetrics
from auctions.model import BidRecord, Rules
from auctions.ports import Funds, Publisher
from core.db import DATABASE_ERRORS
from core.errors import AppError, ServiceUnavailable
from core.tasks import stop

log = logging.getLogger("souk.auctions")

OVERFLOW_MAX = 10_000  # audit rows of overload refusals kept per auction for the next batch
NAMES_MAX = 10_000  # display names a writer keeps


@dataclass(frozen=True, slots=True)
class WriterConfig:
    """What every writer of a process shares (built by the Sequencer)."""

    pool: asyncpg.Pool
    publisher: Publisher
    metrics: AuctionMetrics
    funds: Funds | None = None  # None: bids are not checked against wallets
    max_batch: int = 500
    max_queue: int = 5_000
    idle_s: float = 30.0
    publish_timeout_s: float = 2.0
    durable: bool = True  # False only in the "cost of durability" benchmark
    turn_s: float = 0.02
    funds_cache_s: float = 1.0


class Budget:
    """The writers' pool-connection budget: at most `size` writers hold a connection at once
    (the rest of the pool stays for requests). A writer gives its connection back when its
    queue empties, or, while another writer waits for one, after the batch that ends its turn
    (`WriterConfig.turn_s` of holding it): hot auctions take turns instead of one starving
    the rest."""

    def __init__(self, size: int, metrics: AuctionMetrics) -> None:
        self._slots = asyncio.Semaphore(max(1, size))
        self._metrics = metrics
        self.waiting = 0  # writers waiting for a slot
        self.unaudited_logged = False  # "refused without an audit row" is logged once

    async def acquire(self) -> None:
        if self._slots.locked():
            self._metrics.connection_waits.inc()
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1

    def release(self) -> None:
        self._slots.release()


class Writer:
    def __init__(
        self, config: WriterConfig, budget: Budget, auction_id: uuid.UUID, *,
        on_idle: Callable[[Writer], None], on_closed: Callable[[uuid.UUID], None],
    ) -> None:
        self._c = config
        self._budget = budget
        self._on_idle = on_idle  # the writer stopped after `idle_s` without bids
        self._on_closed = on_closed  # a batch closed the auction (buy it now)
        self.auction_id = auction_id
        self._queue: collections.deque[BidRequest] = collections.deque()
        self._queued = asyncio.Event()  # set while the queue holds bids
        self._names: dict[uuid.UUID, str] = {}
        self._rules: Rules | None = None
        self._wallets = decisions.WalletCache(config.funds_cache_s)
        self._overflow: list[BidRequest] = []  # audit rows of bids refused as overloaded
        self._conn: asyncpg.pool.PoolConnectionProxy | None = None
        self._held_since = 0.0  # when the writer took its connection (monotonic)
        # the last batch's announcement, still on its way while the next batch goes on
        self._publishing: asyncio.Future[None] | None = None
        self._task = asyncio.create_task(self._run(), name=f"auction-writer-{auction_id}")

    def put(self, request: BidRequest) -> None:
        """Queue a bid; when `max_queue` bids wait, it is refused with BidQueueFull and only
        its audit row waits (in `overflow`, written with the next batch)."""
        if len(self._queue) < self._c.max_queue:
            self._queue.append(request)
            self._queued.set()
        else:
            if len(self._overflow) >= OVERFLOW_MAX:
                self._c.metrics.unaudited.inc()  # beyond even that: counted, and logged once
                if not self._budget.unaudited_logged:
                    self._budget.unaudited_logged = True
                    log.error("bid attempts refused without an audit row",
                              extra={"auction_id": str(self.auction_id)})
            else:
                self._overflow.append(replace(
                    request, refused=request.refused or BidQueueFull.code, refusal=None,
                    checks=None, future=None))
            raise BidQueueFull() from None

    async def stop(self) -> None:
        await stop(self._task)
        while self._queue:
            self._queue.popleft().fail(ServiceUnavailable())

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
                    async with asyncio.timeout(self._c.idle_s):
                        await self._queued.wait()
                except TimeoutError:
                    if not self._queue:  # no await between the check and the removal
                        self._on_idle(self)
                        return
                    continue
            await self._record(self._take())
            if (self._budget.waiting and self._conn is not None
                    and time.monotonic() - self._held_since >= self._c.turn_s):
                await self._release()  # another auction's writer waits: its turn

    async def _record(self, batch: list[BidRequest]) -> None:
        """Commit a batch; if it cannot be recorded, every bid in it is answered."""
        try:
            await self._commit(batch)
            return
        except asyncio.CancelledError:
            _fail_all(batch, ServiceUnavailable())
            raise
        except AppError as exc:
            _fail_all(batch, exc)
        except DATABASE_ERRORS as exc:
            log.warning("bid batch not recorded", extra={"error": repr(exc)})
            _fail_all(batch, ServiceUnavailable())
            await self._release()  # a fresh connection for the next batch
        except Exception:  # a bug: answer, and keep the auction's writer alive
            log.exception("bid batch failed", extra={"auction_id": str(self.auction_id)})
            _fail_all(batch, ServiceUnavailable())
            await self._release()
        self._c.metrics.batch_failures.inc()

    def _take(self) -> list[BidRequest]:
        """The first queued bid and those after it whose checks are done, up to `max_batch`,
        plus the overflow's audit rows (they ride along, beyond `max_batch`). A bid whose
        rate-limit check is still on its way to Redis waits for the next batch (with the bids
        behind it: arrival order is kept) instead of making this batch wait for it; most
        checks finish while the previous batch is written, so this only trims the tail."""
        queue = self._queue
        batch = [queue.popleft()]
        while queue and len(batch) < self._c.max_batch and queue[0].checked():
            batch.append(queue.popleft())
        if self._overflow:
            batch.extend(self._overflow)
            self._overflow = []
        return batch

    async def _connection(self) -> asyncpg.pool.PoolConnectionProxy:
        """The writer keeps one pool connection while bids keep coming (no acquire and no
        reset query per batch), within the connection budget."""
        if self._conn is None:
            await self._budget.acquire()
            try:
                self._conn = await self._c.pool.acquire()
            except BaseException:
                self._budget.release()
                raise
            self._c.metrics.connections.inc()
            self._held_since = time.monotonic()
        return self._conn

    async def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._c.metrics.connections.dec()
            try:
                await self._c.pool.release(conn)  # its reset also drops any lock still held
            finally:
                self._budget.release()

    async def _commit(self, batch: list[BidRequest]) -> None:
        stage = self._c.metrics.stage
        t0 = time.perf_counter()
        batch = await checks.settle(batch)
        if not batch:
            return
        conn = await self._connection()
        t1 = time.perf_counter()
        short = await checks.short_of_funds(conn, self._c.funds, self._wallets, batch,
                                            self._c.metrics)
        await self._learn_names(conn, {r.bidder for r in batch if r.refused is None})
        # Under the auction's advisory lock, no transaction: one round trip takes the lock and
        # reads the state and the retried bids, one statement writes the whole batch (and
        # commits: it is one statement).
        t2 = time.perf_counter()
        keys = {(r.bidder, r.bid_id) for r in batch if r.refused is None}
        try:
            locked = await writes.lock_and_read(conn, writes.advisory_key(self.auction_id),
                                                self.auction_id, keys, rules=self._rules)
            if locked is None:
                raise AuctionNotFound()
            self._rules = locked[0].auction.rules  # they never change: reused next batch
            t3 = time.perf_counter()
            announcement, decided = await self._apply(conn, batch, short, locked)
        except BaseException:
            if not await writes.advisory_unlock(conn):
                await self._release()  # the pool's reset (or closing it) ends the lock
            raise
        t4 = time.perf_counter()
        for step, took in zip(STAGES[:4], (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            stage.labels(step).observe(took)
        self._c.metrics.batches.inc()
        self._c.metrics.batch_size.observe(len(batch))
        # The batch is committed: unlock (the next writer may go) and publish (ours reaches
        # Redis long before the next writer can publish), then answer while both are on their
        # way — the answers wait for neither reply (the bids are durable; a publication that
        # fails is filled in by the next commit), only for both requests to be sent. The next
        # batch waits for the unlock's reply (same connection), not for the publication's: the
        # next announcement waits for this one instead.
        unlocking = asyncio.ensure_future(writes.advisory_unlock(conn))
        self._publishing = asyncio.ensure_future(self._announce(self._publishing, announcement))
        await asyncio.sleep(0)  # both run up to their first wait for a reply
        if self._c.durable:
            self._answer(decided.answers)
        if not await unlocking:
            await self._release()
        stage.labels("unlock").observe(time.perf_counter() - t4)
        if decided.closed:
            self._on_closed(self.auction_id)

    async def _apply(
        self, conn: asyncpg.Connection, batch: list[BidRequest], short: set[int],
        locked: tuple[store.AuctionRow, int, dict[tuple[uuid.UUID, uuid.UUID], BidRecord]],
    ) -> tuple[Announcement | None, decisions.Decided[BidRequest]]:
        """Decide the batch from the locked state (batch.decide) and write it; returns what to
        announce and the decisions."""
        row, now, known = locked
        decided = decisions.decide(row.auction, batch, known, short, now)
        announcement: Announcement | None = None
        if decided.events:
            await self._learn_names(conn, wire.people(decided.events))  # a leader from elsewhere
            announcement = (row.pub_seq + 1,
                            wire.publications(self.auction_id, decided.events, self._names))
        if not self._c.durable:  # benchmark only ("cost of durability"): answer, then commit
            self._answer(decided.answers)
        await writes.write_batch(conn, self.auction_id,
                                 decided.state if decided.changed else None, decided.records,
                                 decided.attempts, announcement)
        outcomes = self._c.metrics.attempts
        for outcome, n in decided.outcomes().items():
            outcomes.labels(outcome).inc(n)
        return announcement, decided

    async def _announce(self, previous: asyncio.Future[None] | None,
                        announcement: Announcement | None) -> None:
        """Publish after the writer's previous announcement is out (they stay in order)."""
        if previous is not None:
            await asyncio.wait([previous])  # whatever became of it
        if announcement is None:
            return
        started = time.perf_counter()
        await announce(self._c.pool, self._c.publisher, self.auction_id, announcement,
                       timeout_s=self._c.publish_timeout_s)
        self._c.metrics.stage.labels("publish").observe(time.perf_counter() - started)

    def _answer(self, answers: list[tuple[BidRequest, decisions.Answer]]) -> None:
        """Wake each bidder with its answer, and time it from the bid's arrival."""
        now = time.monotonic()
        ack = self._c.metrics.ack
        for request, answer in answers:
            ack.observe(now - request.received_at)
            if isinstance(answer, BaseException):
                request.fail(answer)
            elif request.future is not None and not request.future.done():
                request.future.set_result(answer)

    async def _learn_names(self, conn: asyncpg.Connection, people: set[uuid.UUID]) -> None:
        """Display names for announcements (leaders), looked up before taking the lock where
        possible: this batch's bidders."""
        names = self._names
        # not `people - names.keys()`: that walks every name known (up to 10,000) per batch
        missing = [p for p in people if p not in names]
        if missing:
            if len(names) > NAMES_MAX:
                names.clear()
            names.update(await store.display_names(conn, missing))


def _fail_all(batch: list[BidRequest], exc: BaseException) -> None:
    for r in batch:
        r.fail(exc)
