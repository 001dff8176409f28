"""The race on real servers, through the hub: two server processes, 200 funded bidders bidding
concurrently over websockets on one auction for about 10 s of soft close, spread over both
processes, with watchers on each. PostgreSQL's record is the reference: gapless seqs, every
acknowledged bid in it, every client saw the same order, one winner, one order, ledger clean."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from core import db
from core.config import Settings
from tests.integration.auction_crowd import (
    Crowd,
    all_arrived,
    bid_events,
    bidder,
    buyers,
    check_record,
    closed_events,
    open_auction,
    watcher,
)

BIDDERS = 200
BIDDING_S = 10.0


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


async def test_two_hundred_bidders_two_processes(servers, settings: Settings,  # type: ignore[no-untyped-def]
                                                 http: httpx.AsyncClient) -> None:
    env = {"AUCTION_BID_RATE": "1000"}
    a, b = servers(**env), servers(**env)
    pool = await db.create_pool(settings.database_url, schema=settings.database_schema,
                                min_size=1, max_size=4)
    try:
        users = await buyers(pool, settings, BIDDERS)
        auction_id = await open_auction(http, a.url, duration_s=5, soft_close_s=2)
        crowd = Crowd(auction_id, [a.ws_url, b.ws_url], clients=BIDDERS + 4)
        watchers = [asyncio.create_task(watcher(crowd, url, binary=binary))
                    for url in (a.ws_url, b.ws_url) for binary in (False, True)]
        crowd_tasks = [asyncio.create_task(bidder(crowd, i, user, token, seconds=BIDDING_S,
                                                  watch=i % 20 == 0))
                       for i, (user, token) in enumerate(users)]
        # everyone is connected and subscribed before the first bid
        await all_arrived(crowd, [*crowd_tasks, *watchers])
        clients_seen = await asyncio.gather(*crowd_tasks)
        watchers_seen = await asyncio.gather(*watchers)

        record = await check_record(pool, crowd, [u for u, _ in users])
        assert len(crowd.acks) == len(record)  # no fault: every accepted bid was answered
        assert crowd.reconnects == 0
        assert len(record) > 50, crowd.refusals  # there was a real race
        # Every watcher and every subscribed bidder, on either process, in either encoding,
        # saw exactly PostgreSQL's bids in PostgreSQL's order, and one close.
        seen = [s for s in clients_seen if s] + watchers_seen
        assert len(seen) == 4 + BIDDERS // 20
        winner = str(await pool.fetchval(
            "SELECT leader_id FROM auctions WHERE id = $1::uuid", auction_id))
        for messages in seen:
            assert bid_events(messages, crowd.channel) == record
            [closed] = closed_events(messages, crowd.channel)
            assert closed["winner_id"] == winner and closed["price"] == record[-1][1]
    finally:
        await pool.close()
