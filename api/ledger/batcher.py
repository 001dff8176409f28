"""Group commit for ledger transfers: many concurrent requests, one transaction per batch.

`LedgerBatcher.post(request)` queues a transfer and returns once the batch that carried it has
COMMITTED (or raises its refusal). A writer task takes what is queued (up to `max_batch`) and
posts it in one transaction of five round trips whatever the batch size (BEGIN, the stored ids,
the account locks, one write statement, COMMIT; api.ledger.batch_store), deciding each
transfer's outcome in arrival order with the pure rules of api.ledger.batching. While one batch
commits the next one fills, so throughput grows with load and latency stays about one batch
write (no waiting window). `writers` batches may be in flight at once; they lock accounts in
ascending id, like every ledger writer, so they never deadlock, and a hot account (one wallet,
a platform shard) is written once per batch instead of once per transfer.

Every ledger invariant holds per transfer, as with the one-transfer path (api.ledger.service):
legs sum to zero (checked when the request is built, and by the database's deferred trigger),
non-negative accounts never go below zero (a transfer that would is refused alone, the rest of
the batch posts), rows are append-only, and a transfer id posts at most once: an id already
stored replays (or is `IdempotencyKeyReused` with other content); when another process commits
the same id while this batch runs, the batch's insert fails on the primary key, it rolls back
and is decided again (the id is then a replay). Use it for transfers that stand alone (top-ups,
adjustments); flows that update an order's funds row in the caller's transaction stay on
api.ledger.service.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import uuid
from collections.abc import Mapping
from typing import Any

import asyncpg

from api.ledger import batch_store, rules, store
from api.ledger.batching import Decision, Outcome, Request, accounts_to_lock, decide
from api.ledger.errors import InsufficientFunds, InvalidAmount
from api.ledger.posting import Transfer
from api.ledger.rules import LedgerRuleError, TransferKind
from core.errors import FieldError, IdempotencyKeyReused
from core.tasks import stop

log = logging.getLogger("souk.ledger.batcher")

_Pending = tuple[Request, "asyncio.Future[Transfer]"]


class LedgerBatcher:
    """Posts transfers in batches on `pool`. Call `aclose()` at shutdown."""

    def __init__(self, pool: asyncpg.Pool, *, max_batch: int = 1000, writers: int = 2,
                 attempts: int = 3) -> None:
        if max_batch < 1 or writers < 1 or attempts < 1:
            raise ValueError("max_batch, writers and attempts must be positive")
        self._pool = pool
        self._max_batch = max_batch
        self._attempts = attempts
        self._queue: collections.deque[_Pending] = collections.deque()
        self._wake = asyncio.Event()
        self._writers = [asyncio.create_task(self._run()) for _ in range(writers)]
        self.batches = 0  # for metrics and tests: how many batches committed

    async def post(self, request: Request) -> Transfer:
        """Post one transfer; returns after its batch committed. Raises InsufficientFunds or
        IdempotencyKeyReused (nothing of it was written)."""
        future: asyncio.Future[Transfer] = asyncio.get_running_loop().create_future()
        self._queue.append((request, future))
        self._wake.set()
        return await future

    async def topup(self, *, user_id: uuid.UUID, amount: int, currency: str,
                    transfer_id: uuid.UUID, metadata: Mapping[str, Any] | None = None
                    ) -> Transfer:
        """As `api.ledger.service.topup`, through the batch."""
        try:
            amount, currency = rules.check_amount(amount), rules.check_currency(currency)
        except LedgerRuleError as exc:
            raise InvalidAmount([FieldError("amount", str(exc))]) from None
        digest = rules.fingerprint(
            TransferKind.TOPUP, {"user": user_id, "amount": amount, "currency": currency})
        return await self.post(Request(
            transfer_id, TransferKind.TOPUP, digest,
            tuple(rules.topup_legs(user_id, amount, currency)), metadata=dict(metadata or {})))

    async def aclose(self) -> None:
        await stop(*self._writers)
        while self._queue:
            _, future = self._queue.popleft()
            if not future.done():
                future.set_exception(RuntimeError("the ledger batcher was closed"))

    async def _run(self) -> None:
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = [self._queue.popleft()
                     for _ in range(min(self._max_batch, len(self._queue)))]
            batch = [(r, f) for r, f in batch if not f.cancelled()]
            try:
                answers = await self._commit([r for r, _ in batch])
            except Exception as exc:  # the batch rolled back: each request fails with it
                log.warning("ledger batch failed", extra={"error": repr(exc)})
                answers = [exc] * len(batch)
            for (_, future), answer in zip(batch, answers, strict=True):
                if future.done():
                    continue
                if isinstance(answer, BaseException):
                    future.set_exception(answer)
                else:
                    future.set_result(answer)

    async def _commit(self, requests: list[Request]) -> list[Transfer | BaseException]:
        for attempt in range(self._attempts):
            try:
                async with self._pool.acquire() as conn, conn.transaction():
                    stored = await batch_store.stored(conn, [r.id for r in requests])
                    legs, read = accounts_to_lock(requests)
                    accounts = await batch_store.lock_balances(conn, legs, read)
                    decision = decide(
                        requests, {k: a.balance for k, a in accounts.items()}, stored)
                    created = (await batch_store.write(conn, decision, accounts)
                               if decision.posted else {})
                self.batches += 1
                return await self._answers(requests, decision, created)
            except asyncpg.UniqueViolationError:  # another process committed one of the ids
                if attempt == self._attempts - 1:
                    raise
        raise AssertionError("unreachable")

    async def _answers(self, requests: list[Request], d: Decision,
                       created: Mapping[uuid.UUID, Any]) -> list[Transfer | BaseException]:
        entries: dict[uuid.UUID, list[store.StoredLeg]] = {}
        for e in d.entries:
            entries.setdefault(e.transfer_id, []).append(
                store.StoredLeg(e.account, e.amount, e.balance_after))
        out: list[Transfer | BaseException] = []
        for r, outcome in zip(requests, d.outcomes, strict=True):
            if outcome is Outcome.POSTED:
                out.append(Transfer(r.id, r.kind, r.order_id, r.reference_id, dict(r.metadata),
                                    created[r.id], tuple(entries[r.id]), False))
            elif outcome is Outcome.INSUFFICIENT_FUNDS:
                out.append(InsufficientFunds())
            elif outcome is Outcome.REUSED:
                out.append(IdempotencyKeyReused())
            else:
                t = await store.get_transfer(self._pool, r.id)
                out.append(IdempotencyKeyReused() if t is None else Transfer(
                    t.id, t.kind, t.order_id, t.reference_id, t.metadata, t.created_at, t.legs,
                    True))
        return out
