"""The auction service: the I/O shell around the pure engine.

One instance per process, built by the composition root with the pool, the rate limiter and
the injected ports. HTTP routes and the websocket `bid` op both call `place_bid`, so the two
surfaces behave identically.

Bid path: role check → per-user rate limit (Redis token bucket, started at once and settled
while the bid waits for its batch, in checks.py) → the sequencer: one funds query through the
`Funds` port for the whole batch (wallet available ≥ the bid, or ≥ the configured deposit;
checks.py, with the trust rule of batch.WalletCache), then the group commit in PostgreSQL and
the broadcast in seq order → acknowledgement. Every refusal is written to the attempts audit.

The funds check is a check, not a reservation: the winner's wallet is held and captured at
close (`scheduler.py`); if it cannot pay then, the payment-window rule applies. A balance that
covered a bidder's bid is trusted for their next bids for `funds_cache_s` (1 s by default,
AUCTION_FUNDS_CACHE_MS): a wallet emptied meanwhile can let a bid through in that second, which
the same rule at close covers; a bid the balance read does not cover always reads the ledger.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg
import msgspec

from auctions import engine, store, views, writes
from auctions.announcements import exclusive
from auctions.batch import BidAck
from auctions.checks import BidRequest
from auctions.errors import (
    AuctionNotFound,
    InvalidAuctionAction,
)
from auctions.metrics import AuctionMetrics
from auctions.model import (
    MAX_PRICE,
    Auction,
    BidKind,
    Event,
    IncrementTable,
    Rules,
    check_steps,
    new_auction,
)
from auctions.ports import Funds, Orders, Publisher, VariantLookup
from auctions.sequencer import Sequencer
from core.auth import Principal, Role
from core.errors import FieldError, Forbidden, RateLimited, Unauthorized, ValidationFailed
from core.http import validation_field_error
from core.ratelimit import CoalescingLimiter, RateLimiter

MIN_DURATION_S = 5
MAX_DURATION_S = 7 * 86_400
MAX_SOFT_CLOSE_S = 600
MAX_SCHEDULE_AHEAD_S = 30 * 86_400
DEFAULT_SOFT_CLOSE_S = 10


@dataclass(frozen=True, slots=True)
class AuctionSettings:
    bid_rate: int = 20  # bids per user per window, across auctions
    bid_rate_window_s: int = 10
    bid_deposit: int = 0  # 0: the wallet must cover the bid itself; else this deposit
    payment_window_s: int = 900
    close_poll_s: float = 0.25
    max_batch: int = 500
    max_queue: int = 5_000
    writer_connections: int = 10  # most pool connections the bid writers hold at once
    funds_cache_s: float = 1.0  # a wallet balance that covers a bid is trusted this long
    publications_keep_s: float = 86_400  # recorded announcements older than this are deleted
    attempts_keep_s: float = 0  # attempts of auctions ended longer ago are deleted (0: never)


@dataclass(frozen=True, slots=True)
class NewAuction:
    """A validated creation request (see routes.CreateAuctionBody for the wire form)."""

    variant_id: uuid.UUID
    start_price: int
    duration_s: int
    show_id: uuid.UUID | None = None
    soft_close_s: int = DEFAULT_SOFT_CLOSE_S
    reserve_price: int | None = None
    buy_now_price: int | None = None
    starts_at_ms: int | None = None
    increments: tuple[tuple[int, int], ...] | None = None


class BidFrame(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The websocket `bid` op (`id` and `op` are the hub's; other keys are refused)."""

    auction_id: uuid.UUID
    amount: int
    bid_id: uuid.UUID
    kind: BidKind = BidKind.MAX
    id: int | None = None
    op: str | None = None


class Router(Protocol):
    async def submit(self, auction_id: uuid.UUID, request: BidRequest) -> BidAck: ...

    def record_refusal(self, auction_id: uuid.UUID, request: BidRequest) -> None: ...


class AuctionService:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        publisher: Publisher,
        funds: Funds,
        orders: Orders,
        variants: VariantLookup,
        limiter: RateLimiter | None,
        settings: AuctionSettings = AuctionSettings(),
        durable: bool = True,
        metrics: AuctionMetrics | None = None,
    ) -> None:
        self.pool = pool
        self.publisher = publisher
        self.funds = funds
        self.orders = orders
        self.variants = variants
        self.limiter = limiter
        self.settings = settings
        self.sequencer = Sequencer(
            pool, publisher, funds=funds, max_batch=settings.max_batch,
            max_queue=settings.max_queue, durable=durable, metrics=metrics,
            max_connections=settings.writer_connections,
            funds_cache_s=settings.funds_cache_s,
        )
        self._rules: dict[uuid.UUID, Rules] = {}
        self._rules_lookups: dict[uuid.UUID, asyncio.Future[store.AuctionRow]] = {}
        # where accepted-for-sequencing bids go: this process's sequencer, or the auction's
        # owner process (`route_bids`, see owners.py)
        self._route: Router = self.sequencer
        self._gate = (
            CoalescingLimiter(limiter, "auction_bid", capacity=settings.bid_rate,
                              window_s=settings.bid_rate_window_s)
            if limiter is not None else None
        )

    def route_bids(self, router: Router) -> None:
        """Send bids through `router` (owners.BidRouter: one owner process per auction)."""
        self._route = router

    async def aclose(self) -> None:
        await self.sequencer.aclose()

    # --- sellers -------------------------------------------------------------------------

    async def create(self, principal: Principal, new: NewAuction) -> store.AuctionRow:
        """Create an auction for one of the seller's variants. Raises Forbidden (not a seller),
        ValidationFailed (unknown variant, prices, times)."""
        if principal.role is not Role.SELLER:
            raise Forbidden("Only sellers create auctions.")
        errors = _check_new(new)
        if errors:
            raise ValidationFailed(errors)
        async with self.pool.acquire() as conn, conn.transaction():
            info = await self.variants.variant(conn, new.variant_id)
            if info is None or info.seller_id != principal.user_id:
                raise ValidationFailed([FieldError("variant_id", "no such variant of yours")])
            if new.show_id is not None and (
                await self.variants.show_seller(conn, new.show_id) != principal.user_id
            ):
                raise ValidationFailed([FieldError("show_id", "no such show of yours")])
            now = await store.now_ms(conn)
            starts_at = new.starts_at_ms if new.starts_at_ms is not None else now
            if starts_at < now - 60_000 or starts_at > now + MAX_SCHEDULE_AHEAD_S * 1000:
                raise ValidationFailed(
                    [FieldError("starts_at", "must be now or up to 30 days ahead")]
                )
            rules = Rules(
                auction_id=uuid.uuid4(), seller_id=principal.user_id, currency=info.currency,
                start_price=new.start_price, starts_at=starts_at,
                duration_ms=new.duration_s * 1000, soft_close_ms=new.soft_close_s * 1000,
                reserve_price=new.reserve_price, buy_now_price=new.buy_now_price,
                increments=IncrementTable(new.increments) if new.increments else IncrementTable(),
            )
            if not await self.variants.hold_unit(conn, new.variant_id):
                raise ValidationFailed([FieldError(
                    "variant_id", "no unit of it is available to auction (all sold or "
                    "reserved, or its product is not published)")])
            auction = engine.open_if_due(new_auction(rules), now)
            return await writes.insert(conn, auction, variant_id=new.variant_id,
                                      show_id=new.show_id, unit_held=True)

    # --- reading -------------------------------------------------------------------------

    async def get(self, auction_id: uuid.UUID) -> store.AuctionRow:
        row = await store.get(self.pool, auction_id)
        if row is None:
            raise AuctionNotFound()
        return row

    async def view(self, auction_id: uuid.UUID) -> dict[str, Any]:
        row = await self.get(auction_id)
        names = await store.display_names(self.pool, [row.auction.leader] if row.auction.leader
                                          else [])
        return views.public(row, names)

    async def list_views(
        self, *, show_id: uuid.UUID | None, states: list[str] | None,
        after_id: uuid.UUID | None, limit: int,
    ) -> list[dict[str, Any]]:
        """Public views of auctions, newest first (see `store.list_page`)."""
        rows = await store.list_page(self.pool, show_id=show_id, states=states,
                                     after_id=after_id, limit=limit)
        leaders = [r.auction.leader for r in rows if r.auction.leader is not None]
        names = await store.display_names(self.pool, leaders)
        return [views.public(r, names) | {"show_id": str(r.show_id) if r.show_id else None}
                for r in rows]

    # --- bidding -------------------------------------------------------------------------

    async def place_bid(
        self, principal: Principal | None, auction_id: uuid.UUID, *, amount: int,
        bid_id: uuid.UUID, kind: BidKind = BidKind.MAX,
    ) -> BidAck:
        """Place a bid; returns once it is committed. Raises Unauthorized, Forbidden,
        RateLimited, InsufficientFunds, AuctionNotFound, the engine's BidRejected subclasses,
        IdempotencyKeyReused, BidQueueFull or ServiceUnavailable."""
        if principal is None:
            raise Unauthorized()
        if principal.role is not Role.BUYER:
            raise Forbidden("Only buyers bid.")
        if not 0 < amount <= MAX_PRICE and kind is not BidKind.BUY_NOW:
            raise ValidationFailed([FieldError("amount", f"must be between 1 and {MAX_PRICE}")])
        rules = await self._rules_of(auction_id)
        needs = engine.funds_needed(rules, kind, amount, self.settings.bid_deposit)
        request = BidRequest(principal.user_id, amount, kind, bid_id, needs=needs,
                             currency=rules.currency)
        if self._gate is not None:
            # The rate limit runs while the bid waits for its batch; it is settled, and the
            # funds checked once for the whole batch, in checks.py (a refusal is recorded like
            # any other attempt).
            request.start_rate_check(self._rate_check(principal.user_id))
        return await self._route.submit(auction_id, request)

    async def _rate_check(self, user_id: uuid.UUID) -> None:
        assert self._gate is not None
        decision = await self._gate.take(str(user_id))
        if not decision.allowed:
            raise RateLimited(decision.retry_after_s)

    async def _rules_of(self, auction_id: uuid.UUID) -> Rules:
        """The auction's rules (they never change after creation), cached; the bids of a
        burst that all miss the cache share one lookup."""
        rules = self._rules.get(auction_id)
        if rules is not None:
            return rules
        pending = self._rules_lookups.get(auction_id)
        if pending is None:
            pending = asyncio.ensure_future(self.get(auction_id))
            self._rules_lookups[auction_id] = pending
            pending.add_done_callback(lambda _: self._rules_lookups.pop(auction_id, None))
        row = await asyncio.shield(pending)
        if len(self._rules) > 50_000:
            self._rules.clear()
        rules = self._rules[auction_id] = row.auction.rules
        return rules

    def bid_op(self) -> Callable[[Principal | None, dict[str, Any]], Awaitable[dict[str, Any]]]:
        """The websocket `bid` op for the hub's registry:
        `await op(principal, {"auction_id", "amount", "bid_id", "kind"?})` →
        `{"accepted": True, "seq", "amount", "price", "ends_at", "leading", "replayed"}`;
        raises AppError subclasses (bid_too_low, auction_not_open, insufficient_funds,
        rate_limited, validation_failed, ...)."""

        async def op(principal: Principal | None, frame: dict[str, Any]) -> dict[str, Any]:
            try:
                parsed = msgspec.convert(frame, BidFrame, strict=True)
            except msgspec.ValidationError as exc:
                raise ValidationFailed([validation_field_error(str(exc))]) from None
            ack = await self.place_bid(principal, parsed.auction_id, amount=parsed.amount,
                                       bid_id=parsed.bid_id, kind=parsed.kind)
            return ack.frame()

        return op

    # --- admins --------------------------------------------------------------------------

    async def cancel(self, principal: Principal, auction_id: uuid.UUID, reason: str) -> None:
        """Cancel with a reason (recorded with who did it, announced): an admin, any live
        auction; its seller, their own before its first bid (a listing made by mistake;
        bidders are never cancelled on by the seller). Raises Forbidden, AuctionNotFound,
        InvalidAuctionAction (already over; or, for the seller, bids placed)."""
        who = "Only admins, or the seller before the first bid, cancel auctions."
        if principal.role not in (Role.ADMIN, Role.SELLER):
            raise Forbidden(who)

        async def work(conn: asyncpg.Connection, row: store.AuctionRow, now: int) -> list[Event]:
            if principal.role is Role.SELLER:
                if row.auction.rules.seller_id != principal.user_id:
                    raise Forbidden(who)
                if row.auction.bid_count:
                    raise InvalidAuctionAction(
                        "It has bids: only an admin can cancel it now.")
            cancelled, events = engine.cancel(row.auction, reason, now)
            await writes.save_state(conn, cancelled)
            await self.release_unsold_unit(conn, row, cancelled)
            await writes.admin_action(conn, auction_id, actor=principal.user_id,
                                     action="cancel", reason=reason)
            return events

        await exclusive(self.pool, self.publisher, auction_id, work)

    async def release_unsold_unit(
        self, conn: asyncpg.Connection, row: store.AuctionRow, after: Auction,
    ) -> None:
        """Give the unit the auction held back to stock if it has just ended without a sale
        (`after`: its new state, saved in this transaction: the unit goes back exactly once,
        with the change that ended it)."""
        if row.unit_held and engine.ended_unsold(row.auction, after):
            await self.variants.release_unit(conn, row.variant_id)

    async def void_bid(
        self, principal: Principal, auction_id: uuid.UUID, seq: int, reason: str
    ) -> list[int]:
        """Admin void of accepted bid `seq`: the price is recomputed by replaying the remaining
        bids and announced. Returns every seq now left out (bids that only stood on the voided
        one are left out too). Raises Forbidden, AuctionNotFound, InvalidAuctionAction."""
        _admin(principal)
        left_out: list[int] = []

        async def work(conn: asyncpg.Connection, row: store.AuctionRow, now: int) -> list[Event]:
            if not engine.is_open(row.auction, now):
                raise InvalidAuctionAction("Bids can only be voided while the auction is live.")
            records, voided = await store.history(conn, auction_id)
            state, events, out = engine.void_bid(
                row.auction, records, voided=voided, seq=seq, reason=reason
            )
            await writes.save_state(conn, state)
            await writes.mark_voided(conn, auction_id, sorted(out - voided), reason=reason,
                                    actor=principal.user_id)
            await writes.admin_action(conn, auction_id, actor=principal.user_id,
                                     action="void_bid", reason=reason, seq=seq)
            left_out.extend(sorted(out - voided))
            return events

        await exclusive(self.pool, self.publisher, auction_id, work)
        return left_out

    async def attempts(
        self, principal: Principal, auction_id: uuid.UUID, *, after: int, limit: int
    ) -> list[dict[str, Any]]:
        _admin(principal)
        await self.get(auction_id)
        return await store.attempt_page(self.pool, auction_id, after=after, limit=limit)

    async def bids(self, auction_id: uuid.UUID, *, after: int, limit: int) -> list[dict[str, Any]]:
        await self.get(auction_id)
        return await store.bid_page(self.pool, auction_id, after=after, limit=limit)


def _admin(principal: Principal) -> None:
    if principal.role is not Role.ADMIN:
        raise Forbidden("Admins only.")


def _check_new(new: NewAuction) -> list[FieldError]:
    errors: list[FieldError] = []
    if not 0 < new.start_price <= MAX_PRICE:
        errors.append(FieldError("start_price", f"must be between 1 and {MAX_PRICE}"))
    if not MIN_DURATION_S <= new.duration_s <= MAX_DURATION_S:
        errors.append(FieldError("duration_s", f"must be {MIN_DURATION_S} to {MAX_DURATION_S}"))
    if not 0 <= new.soft_close_s <= MAX_SOFT_CLOSE_S:
        errors.append(FieldError("soft_close_s", f"must be 0 (sudden death) to {MAX_SOFT_CLOSE_S}"))
    if new.reserve_price is not None and not new.start_price <= new.reserve_price <= MAX_PRICE:
        errors.append(FieldError("reserve_price", "must be at least the start price"))
    if new.buy_now_price is not None and not new.start_price < new.buy_now_price <= MAX_PRICE:
        errors.append(FieldError("buy_now_price", "must be above the start price"))
    if (new.buy_now_price is not None and new.reserve_price is not None
            and new.buy_now_price < new.reserve_price):
        errors.append(FieldError("buy_now_price", "must not be below the reserve"))
    if new.increments is not None:
        problem = check_steps(new.increments)
        if problem:
            errors.append(FieldError("increments", problem))
    return errors
