"""Start and stop the auction machinery of one process (for the composition root).

    async with running_auctions(pool, limiter=rt.limiter, settings=AuctionSettings(...),
                                publisher=hub, funds=ledger, orders=commerce,
                                variants=catalog) as auctions:
        # mount auctions.routes.build_routes(lambda r: auctions) and register
        # auctions.bid_op() as the hub's `bid` op
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from auctions.ports import Funds, Orders, Publisher, VariantLookup
from auctions.scheduler import CloseScheduler
from auctions.service import AuctionService, AuctionSettings
from core.config import Settings
from core.ratelimit import RateLimiter


def settings_from(settings: Settings) -> AuctionSettings:
    return AuctionSettings(
        bid_rate=settings.auction_bid_rate,
        bid_rate_window_s=settings.auction_bid_rate_window_s,
        bid_deposit=settings.auction_bid_deposit,
        payment_window_s=settings.auction_payment_window_s,
        close_poll_s=settings.auction_close_poll_ms / 1000,
        max_batch=settings.auction_max_batch,
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
) -> AsyncIterator[AuctionService]:
    """The service, with its closing scheduler running in the background until exit."""
    service = AuctionService(
        pool, publisher=publisher, funds=funds, orders=orders, variants=variants,
        limiter=limiter, settings=settings,
    )
    scheduler = CloseScheduler(service, poll_s=settings.close_poll_s)
    task = asyncio.create_task(scheduler.run(), name="auction-scheduler")
    try:
        yield service
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await service.aclose()
