"""A bidding process for the multi-process tests: bids on one auction from several bidders
through the real service, appending every acknowledgement to a file (flushed) as soon as it
arrives. With `seconds`, it stops bidding after that long, keeps its closing scheduler running
until the auction is closed and settled, and exits.

    python -m tests.auctions.bid_worker <config.json>
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg

from auctions.errors import BidRejected
from auctions.model import BidKind
from auctions.scheduler import CloseScheduler
from auctions.service import AuctionService
from auctions.twins import MemoryPublisher, MemoryVariants
from core.auth import Principal, Role
from core.db import create_pool


class NoLedger:
    """Always enough money; holds and captures succeed (the ledger is another branch)."""

    async def available_many(self, conn: Any, user_ids: list[uuid.UUID],
                             currency: str) -> dict[uuid.UUID, int]:
        return dict.fromkeys(user_ids, 10**12)

    async def hold_for_order(self, conn: Any, **kw: Any) -> None:
        return None

    async def capture_hold(self, conn: Any, **kw: Any) -> None:
        return None


class SqlOrders:
    """Orders in a plain table of the test's schema (created by the test), so that "exactly one
    order" can be checked across processes (no unique key: a second order would show)."""

    async def create_auction_order(self, conn: asyncpg.Connection, *, buyer_id: uuid.UUID,
                                   variant_id: uuid.UUID, amount: int,
                                   unit_held: bool) -> uuid.UUID:
        order_id: uuid.UUID = await conn.fetchval(
            """INSERT INTO race_orders (variant_id, buyer_id, amount, state)
               VALUES ($1, $2, $3, 'pending_payment') RETURNING id""",
            variant_id, buyer_id, amount)
        return order_id

    async def mark_paid(self, conn: asyncpg.Connection, *, order_id: uuid.UUID) -> None:
        await conn.execute("UPDATE race_orders SET state = 'paid' WHERE id = $1", order_id)

    async def cancel_unpaid(self, conn: asyncpg.Connection, *, order_id: uuid.UUID,
                            reason: str) -> None:
        await conn.execute("UPDATE race_orders SET state = 'cancelled' WHERE id = $1", order_id)


async def main(config: dict[str, Any]) -> None:
    pool = await create_pool(config["dsn"], schema=config["schema"], min_size=1, max_size=6)
    svc = AuctionService(pool, publisher=MemoryPublisher(), funds=NoLedger(),
                         orders=SqlOrders(), variants=MemoryVariants(), limiter=None)
    aid = uuid.UUID(config["auction_id"])
    seconds: float | None = config.get("seconds")
    with Path(config["acks"]).open("a", encoding="utf-8") as out:  # noqa: ASYNC230
        if seconds is None:
            await _bid(svc, aid, config["bidders"], out, deadline=None)
            return
        scheduler = CloseScheduler(svc, poll_s=0.05)
        closing = asyncio.create_task(scheduler.run())
        await _bid(svc, aid, config["bidders"], out, deadline=time.monotonic() + seconds)
        done = "SELECT state = 'closed' AND (outcome <> 'sold' OR order_id IS NOT NULL) " \
               "FROM auctions WHERE id = $1"
        for _ in range(2_400):  # polling the database (another process may close it): 2 min
            if await pool.fetchval(done, aid):
                break
            await asyncio.sleep(0.05)
        closing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await closing
    await svc.aclose()
    await pool.close()


async def _bid(svc: AuctionService, aid: uuid.UUID, users: list[str], out: Any,
               deadline: float | None) -> None:
    async def bidder(user: str) -> None:
        principal = Principal(uuid.UUID(user), Role.BUYER, "w", 2**31)
        price = 0
        while deadline is None or time.monotonic() < deadline:
            bid_id = uuid.uuid4()
            if random.random() < 0.7:
                kind, amount = BidKind.NEXT, 10**9
            else:
                kind, amount = BidKind.MAX, price + random.randint(1, 20) * 300
            try:
                ack = await svc.place_bid(principal, aid, amount=amount, bid_id=bid_id,
                                          kind=kind)
            except BidRejected as exc:
                if exc.code == "auction_not_open":
                    return
                await asyncio.sleep(0.001)
                continue
            price = ack.price
            out.write(json.dumps({"bidder": user, "bid_id": str(bid_id), "seq": ack.seq,
                                  "price": ack.price, "ends_at": ack.ends_at}) + "\n")
            out.flush()

    await asyncio.gather(*(bidder(u) for u in users))


if __name__ == "__main__":
    asyncio.run(main(json.loads(Path(sys.argv[1]).read_text())))
