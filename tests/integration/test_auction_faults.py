"""Faults over the hub, on real server processes: a server killed with SIGKILL mid-auction while
bidders on both keep going (the dead one's clients reconnect to the other), and Redis restarted
mid-auction with its data gone. Either way no acknowledged bid is lost (every ack is in
PostgreSQL with the same seq and amount) and the auction closes exactly once, with one order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from core import db
from core.config import Settings
from testkit.servers import ServerProcess
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
from tests.support.private_redis import PrivateRedis

BIDDERS = 60
BIDDING_S = 7.0
FAULT_AT_S = 2.5


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


async def crowd_with_fault(
    settings: Settings, http: httpx.AsyncClient, a: ServerProcess, b: ServerProcess,
    fault: Callable[[Crowd], Awaitable[None]], *, reconnect_watchers: bool = False,
) -> tuple[Crowd, list[list[dict[str, Any]]], list[tuple[int, int]]]:
    """Bidders spread over `a` and `b`, a watcher on each; `fault` runs mid-auction. Returns
    the crowd, what each watcher saw (a's first) and PostgreSQL's (seq, price) record, after
    checking the record against every ack, the order and the ledger."""
    pool = await db.create_pool(settings.database_url, schema=settings.database_schema,
                                min_size=1, max_size=4)
    try:
        users = await buyers(pool, settings, BIDDERS)
        auction_id = await open_auction(http, a.url, duration_s=5, soft_close_s=3)
        crowd = Crowd(auction_id, [a.ws_url, b.ws_url], clients=BIDDERS + 2)
        watchers = [asyncio.create_task(watcher(crowd, s.ws_url, binary=False,
                                                   reconnect=reconnect_watchers)) for s in (a, b)]
        tasks = [asyncio.create_task(bidder(crowd, i, user, token, seconds=BIDDING_S,
                                            watch=False))
                 for i, (user, token) in enumerate(users)]
        await all_arrived(crowd, [*tasks, *watchers])
        await asyncio.sleep(FAULT_AT_S)
        acked_before = len(crowd.acks)
        await fault(crowd)
        await asyncio.gather(*tasks)
        seen = list(await asyncio.gather(*watchers))
        assert acked_before > 0 and len(crowd.acks) > acked_before  # bidding went on after it
        record = await check_record(pool, crowd, [u for u, _ in users])
        for messages in seen:  # whatever a watcher saw is PostgreSQL's record, in its order
            bids = bid_events(messages, crowd.channel)
            assert all(b in record for b in bids)
            assert bids == sorted(bids)
        # Closed exactly once: one close on the row (checked), announced at most once each.
        assert all(len(closed_events(m, crowd.channel)) <= 1 for m in seen)
        return crowd, seen, record
    finally:
        await pool.close()


async def test_server_killed_mid_auction(servers, settings: Settings,  # type: ignore[no-untyped-def]
                                         http: httpx.AsyncClient) -> None:
    a, b = servers(AUCTION_BID_RATE="1000"), servers(AUCTION_BID_RATE="1000")

    async def kill_a(crowd: Crowd) -> None:
        crowd.urls = [b.ws_url]  # clients of the dead process reconnect to the other
        await asyncio.to_thread(a.kill)

    crowd, (on_a, on_b), record = await crowd_with_fault(settings, http, a, b, kill_a)
    assert crowd.reconnects > 0  # a's bidders really lost their server mid-bid
    # The surviving process's watcher saw every bid, in seq order, each as PostgreSQL recorded
    # it, and the one close — including a batch the dead process committed but had not yet
    # announced: the next commit on the auction found the gap and announced it first from
    # `auction_publications`.
    seen_b = bid_events(on_b, crowd.channel)
    assert seen_b == record
    auction_id = crowd.channel.split(":", 1)[1]
    history: list[tuple[int, int]] = []
    while True:  # page through the history as a client does
        r = await http.get(f"{b.url}/v1/auctions/{auction_id}/bids",
                           params={"after": history[-1][0] if history else 0, "limit": 500})
        page = [(item["seq"], item["price"]) for item in r.json()["items"]]
        if not page:
            break
        history += page
    assert history == record
    [closed] = closed_events(on_b, crowd.channel)
    assert closed["price"] == record[-1][1]
    # The dead process's watcher saw a prefix and no close.
    seen_a = bid_events(on_a, crowd.channel)
    assert seen_a == record[:len(seen_a)] and not closed_events(on_a, crowd.channel)


async def test_redis_restarted_empty_mid_auction(
    servers, settings: Settings, http: httpx.AsyncClient,  # type: ignore[no-untyped-def]
    private_redis: PrivateRedis,
) -> None:
    env = {"REDIS_URL": private_redis.url, "AUCTION_BID_RATE": "1000"}
    a, b = servers(**env), servers(**env)

    async def restart_redis(crowd: Crowd) -> None:
        await asyncio.to_thread(private_redis.kill)
        await asyncio.sleep(0.5)
        await asyncio.to_thread(private_redis.start)  # no persistence: every key is gone

    crowd, seen, record = await crowd_with_fault(settings, http, a, b, restart_redis,
                                             reconnect_watchers=True)
    assert len(record) >= len(crowd.acks) > 0
    # The hub dropped its watchers when Redis lost its data; they subscribed again and saw
    # the rest of the auction, up to its last bid and its one close.
    assert crowd.watcher_reconnects >= 2
    for messages in seen:
        assert bid_events(messages, crowd.channel)[-1] == record[-1]
        [closed] = closed_events(messages, crowd.channel)
        assert closed["price"] == record[-1][1]


def routed(server: ServerProcess, outcome: str) -> float:
    """`souk_auction_bids_routed_total{outcome=...}` on a server process."""
    text = httpx.get(server.url + "/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith(f'souk_auction_bids_routed_total{{outcome="{outcome}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_routed_auction_survives_its_owner_being_killed(
    servers, settings: Settings, http: httpx.AsyncClient,  # type: ignore[no-untyped-def]
) -> None:
    """With AUCTION_ROUTING one process sequences the auction and the other forwards its
    bids there; SIGKILL the owner mid-auction: the other takes the auction over at once (the
    owner's inbox has no subscriber any more) and nothing acknowledged is lost."""
    env = {"AUCTION_BID_RATE": "1000", "AUCTION_ROUTING": "true"}
    a, b = servers(**env), servers(**env)
    roles: dict[str, ServerProcess] = {}

    async def kill_the_owner(crowd: Crowd) -> None:
        forwarded = {s.port: routed(s, "forwarded") for s in (a, b)}
        # exactly one process forwards: the other is the owner
        assert sorted(v > 0 for v in forwarded.values()) == [False, True], forwarded
        owner, other = (a, b) if forwarded[b.port] > 0 else (b, a)
        roles.update(owner=owner, other=other)
        crowd.urls = [other.ws_url]
        await asyncio.to_thread(owner.kill)

    crowd, _seen, record = await crowd_with_fault(settings, http, a, b, kill_the_owner)
    assert crowd.reconnects > 0 and len(record) >= len(crowd.acks) > 0
    assert routed(roles["other"], "owner_gone") >= 1  # it took the auction over
