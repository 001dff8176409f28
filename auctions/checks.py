"""A bid on its way to the sequencer, and its two checks — the per-user rate limit and the
wallet — settled here, in one module.

The service starts the rate-limit check as the bid arrives (`BidRequest.start_rate_check`); it
runs while the bid waits for its batch. Whoever sequences the bid settles it with `settle`
(the writer, for a whole batch, before it takes the auction's lock) or `settle_one` (a process
forwarding the bid to the auction's owner: the owner gets only the outcome). Settling turns a
refusal into `refused`/`refusal` — the bid is then only audited — and is the one place that
reads the check. The wallet check (`short_of_funds`) is one ledger query per batch, with the
trust rule of `batch.WalletCache`; it is a check, not a reservation (see service.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field

import asyncpg

from auctions.batch import BidAck, WalletCache
from auctions.metrics import AuctionMetrics
from auctions.model import BidKind
from auctions.ports import Funds
from core.errors import AppError, RateLimited, ServiceUnavailable

log = logging.getLogger("souk.auctions")

CHECKS_TIMEOUT_S = 5.0  # longest a batch waits for its bids' checks


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
    # The rate-limit check while it runs (see module doc); only this module reads it.
    checks: asyncio.Future[None] | None = None
    refusal: AppError | None = None  # what a refused bid is answered
    # The wallet balance the bid needs (its amount, the buy-it-now price or the deposit; 0: no
    # check) in the auction's currency: checked against the ledger once per batch.
    needs: int = 0
    currency: str = ""

    def start_rate_check(self, check: Awaitable[None]) -> None:
        """Run `check` (raises RateLimited to refuse) while the bid waits for its batch."""
        self.checks = asyncio.ensure_future(check)
        self.checks.add_done_callback(_retrieved)

    def checked(self) -> bool:
        """True when the rate-limit check has come back (or there is none)."""
        return self.checks is None or self.checks.done()

    def fail(self, exc: BaseException) -> None:
        """Answer the bidder with `exc` (if nobody has answered yet)."""
        if self.future is not None and not self.future.done():
            self.future.set_exception(exc)


def _retrieved(checks: asyncio.Future[None]) -> None:
    """Checks whose bid never reached a batch (queue full, shutdown) are not reported as
    never retrieved."""
    if not checks.cancelled():
        checks.exception()


async def settle_one(request: BidRequest) -> None:
    """Wait for the request's check. A refusal (the rate limit) marks it refused, with the
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


async def settle(batch: Sequence[BidRequest]) -> list[BidRequest]:
    """Settle a batch's checks (most finished while the bids waited); bids whose checks failed
    for another reason than a refusal, or did not come back in CHECKS_TIMEOUT_S, are answered
    and left out of what is returned."""
    pending = [r.checks for r in batch if r.checks is not None and not r.checks.done()]
    if pending:
        await asyncio.wait(pending, timeout=CHECKS_TIMEOUT_S)
    kept = []
    for r in batch:
        if r.checks is not None and not r.checks.done():  # Redis or the ledger hangs
            r.checks.cancel()
            r.checks = None
            r.fail(ServiceUnavailable())
            continue
        try:
            await settle_one(r)
        except Exception as exc:
            log.warning("bid checks failed", extra={"error": repr(exc)})
            r.fail(exc if isinstance(exc, AppError) else ServiceUnavailable())
            continue
        kept.append(r)
    return kept


async def short_of_funds(
    conn: asyncpg.Connection, funds: Funds | None, wallets: WalletCache,
    batch: Sequence[BidRequest], metrics: AuctionMetrics,
) -> set[int]:
    """The bids (by id()) whose bidder's wallet does not cover what they need: one ledger
    query for the whole batch, before the auction is locked, unless the cache covers every
    bid (a hot auction's bidders bid again and again: most batches then skip the query)."""
    wanting = [r for r in batch if r.refused is None and r.needs > 0]
    if not wanting or funds is None:
        return set()
    now = time.monotonic()
    unsure = [r for r in wanting if not wallets.covers(r.bidder, r.needs, now)]
    if not unsure:
        metrics.funds_checks.labels("cache").inc()
        return set()
    metrics.funds_checks.labels("ledger").inc()
    bidders = sorted({r.bidder for r in unsure})
    have = await funds.available_many(conn, bidders, unsure[0].currency)
    wallets.learn(((b, have.get(b, 0)) for b in bidders), now)
    return {id(r) for r in unsure if have.get(r.bidder, 0) < r.needs}
