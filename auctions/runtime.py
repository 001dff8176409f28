"""Start and stop the auction machinery of one process (for the composition root).

Wiring in `api/app.py` (lifespan, after the Runtime, the hub, the ledger and commerce exist):

    auctions = await stack.enter_async_context(running_auctions(
        rt.pool, limiter=rt.limiter, settings=settings_from(settings),
        publisher=HubPublisher(realtime.hub),  # publish(channel, data) + numbered announce(...)
        funds=LedgerFunds(rt.pool),     # available_many / hold_for_order / capture_hold / ...
        orders=CommerceOrders(...),     # create_auction_order / mark_paid / cancel_unpaid
        variants=CatalogVariants(),     # variant / hold_unit / release_unit / show_seller
        run_closer=settings.auction_closer,
        routing=Routing(rt.redis, settings.redis_prefix, on_forward=...)  # AUCTION_ROUTING
                if settings.auction_routing else None,
        durable=not settings.auction_ack_before_commit, metrics=auction_metrics,
    ))
    realtime.gateway.add_op("bid", auctions.bid_op())  # (principal | None, frame) -> dict
    yield {"runtime": rt, "auctions": auctions, ...}

and in the route list: `*auctions.routes.build_routes()` (reads `request.state.auctions`).
The ports are Protocols in `auctions/ports.py`, implemented by the adapters in
`api/auction_ports.py`. Every process runs the same: the closing scheduler runs in each
(unless AUCTION_CLOSER=false).
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg
import redis.asyncio as aioredis

from auctions.metrics import AuctionMetrics
from auctions.owners import BidRouter
from auctions.ports import Funds, Orders, Publisher, VariantLookup
from auctions.scheduler import CloseScheduler
from auctions.service import AuctionService, AuctionSettings
from core.config import Settings
from core.ratelimit import RateLimiter
from core.tasks import stop


@dataclass(frozen=True, slots=True)
class Routing:
    """What bid routing needs: the Redis client, the key prefix, a counter hook."""

    redis: aioredis.Redis
    prefix: str
    on_forward: Callable[[str], None] | None = None


def writer_budget(configured: int, pool_max: int) -> int:
    """The bid writers' connection budget: AUCTION_WRITER_CONNECTIONS, or with 0 half the
    pool (the rest stays for requests)."""
    return configured or max(1, pool_max // 2)


def settings_from(settings: Settings) -> AuctionSettings:
    return AuctionSettings(
        bid_rate=settings.auction_bid_rate,
        bid_rate_window_s=settings.auction_bid_rate_window_s,
        bid_deposit=settings.auction_bid_deposit,
        payment_window_s=settings.auction_payment_window_s,
        close_poll_s=settings.auction_close_poll_ms / 1000,
        max_batch=settings.auction_max_batch,
        writer_connections=writer_budget(settings.auction_writer_connections,
                                         settings.database_pool_max),
        funds_cache_s=settings.auction_funds_cache_ms / 1000,
        publications_keep_s=settings.auction_publications_keep_s,
        attempts_keep_s=settings.auction_attempts_keep_days * 86_400,
    )


@asynccontextmanager
async def running_auctions(
    pool: asyncpg.Pool,
    *,
    limiter: RateLimiter | None,
    settings: AuctionSettings,
    publisher: Publisher,
    funds: Funds,
    orders: Orders,
    variants: VariantLookup,
    run_closer: bool = True,
    durable: bool = True,
    routing: Routing | None = None,
    metrics: AuctionMetrics | None = None,
) -> AsyncIterator[AuctionService]:
    """The service, with its closing scheduler running in the background until exit (unless
    `run_closer` is False: then other processes of the deployment close and settle).
    `durable=False` answers bids before their COMMIT: the "cost of durability" benchmark only.
    With `routing`, each auction's bids go to one owner process (owners.py)."""
    service = AuctionService(
        pool, publisher=publisher, funds=funds, orders=orders, variants=variants,
        limiter=limiter, settings=settings, durable=durable, metrics=metrics,
    )
    router: BidRouter | None = None
    if routing is not None:
        router = BidRouter(routing.redis, service.sequencer, prefix=routing.prefix,
                           on_forward=routing.on_forward)
        await router.start()
        service.route_bids(router)
    task: asyncio.Task[None] | None = None
    if run_closer:
        scheduler = CloseScheduler(service, poll_s=settings.close_poll_s)
        service.sequencer.on_closed(lambda _auction_id: scheduler.wake())
        task = asyncio.create_task(scheduler.run(), name="auction-scheduler")
    try:
        yield service
    finally:
        if task is not None:
            await stop(task)
        if router is not None:
            await router.aclose()
        await service.aclose()
