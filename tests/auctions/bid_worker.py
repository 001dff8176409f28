"""A bidding process for the crash test: bids on one auction from several bidders through the
real service and appends every acknowledgement to a file (flushed) before bidding again.

    python -m tests.auctions.bid_worker <config.json>
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from pathlib import Path
from typing import Any

from auctions.errors import BidRejected
from auctions.model import BidKind
from auctions.service import AuctionService
from auctions.twins import MemoryFunds, MemoryOrders, MemoryPublisher, MemoryVariants
from core.auth import Principal, Role
from core.db import create_pool


class RichFunds(MemoryFunds):
    async def available(self, conn: Any, user_id: uuid.UUID, currency: str) -> int:
        return 10**12


async def main(config: dict[str, Any]) -> None:
    pool = await create_pool(config["dsn"], schema=config["schema"], min_size=1, max_size=4)
    svc = AuctionService(pool, publisher=MemoryPublisher(), funds=RichFunds(),
                         orders=MemoryOrders(), variants=MemoryVariants(), limiter=None)
    aid = uuid.UUID(config["auction_id"])
    with Path(config["acks"]).open("a", encoding="utf-8") as out:  # noqa: ASYNC230
        await _bid(svc, aid, config["bidders"], out)


async def _bid(svc: AuctionService, aid: uuid.UUID, users: list[str], out: Any) -> None:
    async def bidder(user: str) -> None:
        principal = Principal(uuid.UUID(user), Role.BUYER, "w", 2**31)
        while True:
            bid_id = uuid.uuid4()
            try:
                ack = await svc.place_bid(principal, aid, amount=10**9, bid_id=bid_id,
                                          kind=BidKind.NEXT)
            except BidRejected:
                continue
            out.write(json.dumps({"bidder": user, "bid_id": str(bid_id), "seq": ack.seq,
                                  "price": ack.price}) + "\n")
            out.flush()

    await asyncio.gather(*(bidder(u) for u in users))


if __name__ == "__main__":
    asyncio.run(main(json.loads(Path(sys.argv[1]).read_text())))
