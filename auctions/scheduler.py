"""Closing auctions exactly once, and settling the winner.

Every process runs `CloseScheduler.run()`. Each pass:
1. finds live auctions whose end has passed by the database clock and closes each one as its
   single writer (`announcements.exclusive`: advisory lock + row lock, then the engine's `close`
   guarded by "still live and due"). Whichever process gets there first closes it; the others
   find it closed and do nothing. A process that dies mid-auction leaves nothing to clean up:
   the next pass of any surviving process (or of the restarted one) closes it.
2. settles sold auctions (in their own transaction, retried by later passes until done):
   - the order: `Orders.create_auction_order` in `pending_payment` for the hammer price,
     recorded on the auction row in the same transaction (under the auction's row lock), so
     exactly one order per sold auction;
   - the payment: `Funds.hold_for_order` then `Funds.capture_hold` (idempotent per order, so
     retries are too), then `Orders.mark_paid`;
   - payment-window rule (Whatnot): if the wallet cannot pay, the auction is marked
     `awaiting_payment` (`PaymentState.AWAITING`; the rule is `engine.payment_refused`) with
     `payment_due_at = closed_at + payment window`; the winner is told on
     `user:{id}` and the capture is retried every `retry_s` until then. When the window runs
     out, the order is cancelled (`Orders.cancel_unpaid`), the auction's payment is `failed`,
     `payment_failed` is announced on `auction:{id}`, and the item may be relisted by the
     seller (a new auction for the same variant).
3. once a second, in a task of its own, checks that every commit's announcement recorded since
   its last check (and at least `quiet_s` ago) reached Redis (`check_announcements`): a
   process that died, or a Redis that failed, between a commit and its publication, on an
   auction that then saw no other commit, would otherwise leave its watchers without those
   bids until the close. A check that finds the announcement out costs one Redis call per
   auction with new commits; one that could not publish is repeated by the next check.
4. once a minute, in another task, deletes recorded announcements older than
   `AuctionSettings.publications_keep_s` (`prune_publications`): they are only ever read to
   re-publish one lost seconds earlier, and a hot auction records one per bid batch; and, when
   `attempts_keep_s` is set, the bid attempts' audit rows of auctions that ended longer ago.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import asyncpg
from prometheus_client import Counter

from auctions import engine, store, writes
from auctions.announcements import announce, exclusive
from auctions.model import Event, Outcome, PaymentState, State
from auctions.service import AuctionService
from core.db import DATABASE_ERRORS
from core.errors import AppError
from core.tasks import stop

log = logging.getLogger("souk.auctions.scheduler")
_MAX_BACKOFF_S = 60.0
_CHECKS_AT_ONCE = 50  # announcement checks in flight at once (one Redis call each)
_PRUNE_BATCHES = 50  # most deletions of `prune_batch` rows in one pruning pass

Notice = tuple[str, dict[str, object]]  # (channel, data) to publish once the settle commits


class CloseScheduler:
    def __init__(
        self, service: AuctionService, *, poll_s: float = 0.25, retry_s: float = 30.0,
        batch: int = 50, check_every_s: float = 1.0, quiet_s: float = 2.0,
        look_back_s: float = 60.0, prune_every_s: float = 60.0, prune_batch: int = 5_000,
    ) -> None:
        self._svc = service
        self._poll = poll_s
        self._retry_s = retry_s
        self._batch = batch
        # announcement checks: how often, how long after its commit an announcement is
        # looked at (its writer publishes it within milliseconds), and how far back the
        # first check looks; `_checked_upto`: where the last one stopped (database clock)
        self._check_every_s = check_every_s
        self._quiet_s = quiet_s
        self._look_back_s = look_back_s
        self._checked_upto: datetime | None = None
        self._prune_every_s = prune_every_s
        self._prune_batch = prune_batch
        self._wake = asyncio.Event()
        # Auctions whose close or settle step raised: retry later, with backoff, so one bad
        # auction neither stops the others nor fills every batch. {id: (retry_at, failures)}
        self._failing: dict[uuid.UUID, tuple[float, int]] = {}

    def wake(self) -> None:
        """Run a pass now (e.g. after a buy-it-now closed an auction)."""
        self._wake.set()

    async def run(self) -> None:
        """Close and settle until cancelled; check announcements and prune the old ones beside
        it (in tasks of their own: a Redis that hangs must not hold up closing); database
        errors are logged and retried."""
        helpers = [
            asyncio.create_task(self._repeat(self.check_announcements, self._check_every_s,
                                             "auction announcement check"),
                                name="auction-announcement-checks"),
            asyncio.create_task(self._repeat(self.prune_publications, self._prune_every_s,
                                             "auction announcement pruning"),
                                name="auction-announcement-pruning"),
        ]
        try:
            while True:
                try:
                    await self.run_once()
                except asyncio.CancelledError:
                    raise
                except DATABASE_ERRORS as exc:
                    log.warning("auction scheduler pass failed", extra={"error": repr(exc)})
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._poll):
                        await self._wake.wait()
        finally:
            await stop(*helpers)

    @staticmethod
    async def _repeat(step: Callable[[], Awaitable[int]], every_s: float, what: str) -> None:
        """`step()` every `every_s` until cancelled; its failures are logged and it goes on."""
        while True:
            try:
                await step()
            except DATABASE_ERRORS as exc:
                log.warning("%s failed", what, extra={"error": repr(exc)})
            except Exception:  # a bug: logged, and the loop goes on
                log.exception("%s failed", what)
            await asyncio.sleep(every_s)

    async def run_once(self) -> tuple[int, int]:
        """One pass; returns (auctions closed by this process, auctions settled). A step that
        raises is logged and retried in a later pass; the other auctions go on."""
        pool = self._svc.pool
        backing_off = self._backing_off()
        closed = 0
        for auction_id in await store.due_ids(pool, limit=self._batch, exclude=backing_off):
            if await self._guarded(self.close, auction_id):
                closed += 1
        settled = 0
        for auction_id in await store.unsettled_ids(pool, limit=self._batch,
                                                    exclude=backing_off):
            if await self._guarded(self.settle, auction_id):
                settled += 1
        return closed, settled

    async def check_announcements(self) -> int:
        """Publish any announcement recorded since the last check that is still missing in
        Redis (see the module doc); returns how many auctions needed it. If any could not be
        published, the next check looks at the same ones again."""
        svc = self._svc
        if self._checked_upto is None:
            now_ms = await store.now_ms(svc.pool)
            self._checked_upto = store.from_ms(now_ms) - timedelta(seconds=self._look_back_s)
        latest, upto = await store.latest_publications(
            svc.pool, after=self._checked_upto, quiet_s=self._quiet_s)
        repaired = failed = 0
        for i in range(0, len(latest), _CHECKS_AT_ONCE):
            chunk = latest[i:i + _CHECKS_AT_ONCE]
            outcomes = await asyncio.gather(*(
                announce(svc.pool, svc.publisher, auction_id, (number, payloads), timeout_s=5.0)
                for auction_id, number, payloads in chunk))
            for (auction_id, number, _), outcome in zip(chunk, outcomes, strict=True):
                failed += outcome == "failed"
                if outcome == "published":
                    repaired += 1
                    svc.sequencer.metrics.announcements_repaired.inc()
                    log.warning("an auction's last announcement had not been published; "
                                "published it now", extra={"auction_id": str(auction_id),
                                                           "pub_seq": number})
        if not failed:
            self._checked_upto = upto
        return repaired

    async def prune_publications(self) -> int:
        """Delete the recorded announcements older than the keep time, and the attempts of
        long-ended auctions when their keep time is set (module doc, 4.); returns how many
        rows were deleted."""
        svc = self._svc
        metrics = svc.sequencer.metrics
        deleted = await self._prune(
            "auction announcements", metrics.publications_pruned,
            lambda: writes.prune_publications(svc.pool, keep_s=svc.settings.publications_keep_s,
                                             limit=self._prune_batch))
        if svc.settings.attempts_keep_s > 0:
            deleted += await self._prune(
                "auction bid attempts", metrics.attempts_pruned,
                lambda: writes.prune_attempts(svc.pool, keep_s=svc.settings.attempts_keep_s,
                                             limit=self._prune_batch))
        return deleted

    async def _prune(self, what: str, counter: Counter,
                     batch: Callable[[], Awaitable[int]]) -> int:
        """`batch()` until it deletes fewer than `prune_batch` rows, at most `_PRUNE_BATCHES`
        times (the next pass goes on where this one stopped)."""
        deleted = 0
        for _ in range(_PRUNE_BATCHES):
            n = await batch()
            deleted += n
            counter.inc(n)
            if n < self._prune_batch:
                break
        if deleted:
            log.info("old rows pruned", extra={"what": what, "deleted": deleted})
        return deleted

    def _backing_off(self) -> list[uuid.UUID]:
        now = time.monotonic()
        return [a for a, (retry_at, _) in self._failing.items() if retry_at > now]

    async def _guarded(
        self, step: Callable[[uuid.UUID], Awaitable[bool]], auction_id: uuid.UUID
    ) -> bool:
        try:
            done = await step(auction_id)
        except asyncio.CancelledError:
            raise
        except Exception:  # one auction's failure must not stop the closing of the others
            failures = self._failing.get(auction_id, (0.0, 0))[1] + 1
            delay = min(_MAX_BACKOFF_S, self._poll * 2**failures)
            self._failing[auction_id] = (time.monotonic() + delay, failures)
            log.exception("auction step failed; retrying later",
                          extra={"auction_id": str(auction_id), "failures": failures,
                                 "retry_in_s": delay})
            return False
        self._failing.pop(auction_id, None)
        return done

    async def close(self, auction_id: uuid.UUID) -> bool:
        """Close one auction if it is still live and due. True if this call closed it."""

        async def work(conn: asyncpg.Connection, row: store.AuctionRow, now: int) -> list[Event]:
            a = row.auction
            if a.state not in engine.LIVE_STATES or now < a.ends_at:
                return []
            closed, events = engine.close(a, now)
            await writes.save_state(conn, closed)
            await self._svc.release_unsold_unit(conn, row, closed)
            return events

        events = await exclusive(self._svc.pool, self._svc.publisher, auction_id, work)
        return bool(events)

    async def settle(self, auction_id: uuid.UUID) -> bool:
        """Create the winner's order and take the payment (see module doc). True when this call
        changed something."""
        svc = self._svc
        notices: list[Notice] = []

        async def work(conn: asyncpg.Connection, row: store.AuctionRow, now: int) -> list[Event]:
            notices.extend(await self._settle_locked(conn, row, now))
            return []

        if not await self._settle_due(auction_id):
            return False
        await exclusive(svc.pool, svc.publisher, auction_id, work)
        await self._notify(notices)
        return bool(notices)

    async def _settle_locked(self, conn: asyncpg.Connection, row: store.AuctionRow,
                             now: int) -> list[Notice]:
        """The settle step as the auction's single writer: the order (made once, recorded on
        the row), then the payment or the payment-window rule. Returns who to tell what."""
        a = row.auction
        if a.state is not State.CLOSED or a.outcome is not Outcome.SOLD or a.leader is None:
            return []
        if row.order_id is not None and row.payment_state is not PaymentState.AWAITING:
            return []
        order_id = row.order_id or await self._svc.orders.create_auction_order(
            conn, buyer_id=a.leader, variant_id=row.variant_id, amount=a.price,
            unit_held=row.unit_held,
        )
        try:
            async with conn.transaction():  # savepoint: a refused payment undoes only itself
                await self._pay(conn, row, order_id)
        except AppError as exc:
            return await self._payment_refused(conn, row, order_id, now, exc.code)
        auction_id = a.rules.auction_id
        await writes.set_settlement(conn, auction_id, order_id=order_id,
                                    payment_state=PaymentState.CAPTURED, payment_due_at=None)
        return [(f"user:{a.leader}", {
            "type": "auction_won", "auction_id": str(auction_id), "order_id": str(order_id),
            "amount": a.price, "currency": a.rules.currency})]

    async def _pay(self, conn: asyncpg.Connection, row: store.AuctionRow,
                   order_id: uuid.UUID) -> None:
        """Hold the hammer price on the winner's wallet, capture it, mark the order paid.
        Raises an AppError (e.g. `insufficient_funds`) when the wallet cannot pay."""
        a, svc = row.auction, self._svc
        assert a.leader is not None
        await svc.funds.hold_for_order(conn, buyer_id=a.leader, order_id=order_id,
                                       amount=a.price, currency=a.rules.currency)
        await svc.funds.capture_hold(conn, order_id=order_id)
        await svc.orders.mark_paid(conn, order_id=order_id)

    async def _payment_refused(self, conn: asyncpg.Connection, row: store.AuctionRow,
                               order_id: uuid.UUID, now: int, reason: str) -> list[Notice]:
        """The payment-window rule (`engine.payment_refused`): still awaiting payment (the
        winner is told once), or failed (the order is cancelled and the watchers told)."""
        a, svc = row.auction, self._svc
        auction_id = a.rules.auction_id
        payment, due = engine.payment_refused(
            a.closed_at if a.closed_at is not None else now, row.payment_due_at, now,
            svc.settings.payment_window_s * 1000)
        if payment is PaymentState.FAILED:
            await svc.orders.cancel_unpaid(conn, order_id=order_id,
                                           reason="auction payment window expired")
        await writes.set_settlement(conn, auction_id, order_id=order_id,
                                    payment_state=payment, payment_due_at=due)
        if payment is PaymentState.FAILED:
            return [(f"auction:{auction_id}", {
                "type": "payment_failed", "auction_id": str(auction_id), "seq": a.seq})]
        if row.payment_state is None:
            return [(f"user:{a.leader}", {
                "type": "auction_payment_due", "auction_id": str(auction_id),
                "order_id": str(order_id), "amount": a.price, "currency": a.rules.currency,
                "due_at": due, "reason": reason})]
        return []

    async def _notify(self, notices: list[Notice]) -> None:
        """Publish after the commit; a failure is logged (the state is durable already)."""
        for channel, data in notices:
            try:
                await self._svc.publisher.publish(channel, data)
            except Exception as exc:
                log.warning("auction notify failed", extra={"error": repr(exc)})

    async def _settle_due(self, auction_id: uuid.UUID) -> bool:
        """Awaiting-payment auctions are retried every `retry_s`, not on every pass."""
        value = await self._svc.pool.fetchval(
            """SELECT payment_state IS DISTINCT FROM 'awaiting_payment'
                      OR updated_at <= clock_timestamp() - make_interval(secs => $2)
                      OR payment_due_at <= clock_timestamp()
               FROM auctions WHERE id = $1""",
            auction_id, self._retry_s,
        )
        return bool(value)
