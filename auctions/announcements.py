"""Publishing what a commit announced, in order, and filling in announcements that were lost.

What a commit will publish is recorded in the commit itself (`auction_publications`, numbered
by `auctions.pub_seq`) and published right after it as that numbered announcement
(`Publisher.announce`: Redis refuses a number that does not follow the channel's last one). A
bid writer sends it as it releases the auction's lock, so it reaches Redis long before the next
writer (two round trips later) publishes; if the next writer still finds the previous
announcement missing, it waits a few ms, then — that process died, or Redis failed, between its
commit and its publication — publishes the missing ones from PostgreSQL first; if no later
commit comes, the closing scheduler's check (scheduler.py, `check_announcements`, once a second
for announcements 2 s old) publishes it the same way. Watchers therefore see every commit, in
order; a watcher that still sees a seq gap (Redis lost its data: new epoch) reloads from REST
(`GET /v1/auctions/{id}/bids?after=`).

`exclusive` is the other way to write an auction (closing, admin actions): the same lock, a
transaction, then the same announcement, so those changes interleave with bids in one order.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import asyncpg

from auctions import store, wire, writes
from auctions.errors import AuctionNotFound
from auctions.model import Event
from auctions.ports import Publisher

log = logging.getLogger("souk.auctions")

# What one commit announces on `auction:{id}`: its number (auctions.pub_seq) and payloads.
Announcement = tuple[int, list[dict[str, Any]]]

REPAIR_MAX = 1_000  # most missing announcements filled in from PostgreSQL at once
# Waits before publishing again when the previous writer's announcement is not out yet (~20 ms
# in all), before filling it in from PostgreSQL.
GAP_RETRY_S = (0.002, 0.005, 0.013)


async def announce(
    pool: asyncpg.Pool, publisher: Publisher, auction_id: uuid.UUID,
    announcement: Announcement | None, *, timeout_s: float,
) -> Literal["published", "out", "failed"]:
    """Publish a committed announcement. If the channel's last announcement is not the one
    before it, the previous writer's publication is late (it is sent as that writer unlocks)
    or lost: wait a little (`GAP_RETRY_S`); if it is still missing — its process died, or
    Redis failed, between its commit and its publication — publish the missing ones first
    from `auction_publications`. Failures are logged: the bids are durable, and the next
    commit (or the scheduler's check, `CloseScheduler.check_announcements`) fills the gap.
    Returns "published" (this call published it), "out" (it was out already; or nothing to
    announce) or "failed"."""
    if announcement is None:
        return "out"
    number, payloads = announcement
    topic = wire.channel(auction_id)
    try:
        async with asyncio.timeout(timeout_s):
            result = await publisher.announce(topic, number, payloads)
            for delay in GAP_RETRY_S:
                if result.status != "gap":
                    break
                await asyncio.sleep(delay)
                result = await publisher.announce(topic, number, payloads)
            if result.status != "gap":
                return "published" if result.status == "published" else "out"
            async with pool.acquire() as conn:
                missing = await store.publications_between(
                    conn, auction_id, result.last, number, limit=REPAIR_MAX)
            log.warning("auction announcements were missing; publishing them now",
                        extra={"auction_id": str(auction_id), "missing": len(missing)})
            complete = len(missing) == number - result.last - 1
            for n, items in missing:
                await publisher.announce(topic, n, items, after_gap=not complete)
                complete = True  # whatever came before the first recorded one is gone
            await publisher.announce(topic, number, payloads, after_gap=True)
            return "published"
    except Exception as exc:  # the bids are durable; the next commit fills the gap
        log.warning("auction publish failed", extra={"error": repr(exc)})
        return "failed"


async def exclusive(
    pool: asyncpg.Pool,
    publisher: Publisher,
    auction_id: uuid.UUID,
    work: Callable[[asyncpg.Connection, store.AuctionRow, int], Awaitable[list[Event]]],
) -> list[Event]:
    """Run `work(conn, row, now)` as the auction's single writer (advisory lock, transaction,
    row lock), commit, then publish the events it returns — the same discipline as bid batches,
    so admin actions and closing interleave with bids in one order. Raises AuctionNotFound."""
    async with pool.acquire() as conn:
        await writes.advisory_lock(conn, writes.advisory_key(auction_id))  # before any row lock
        announcement: Announcement | None = None
        async with conn.transaction():
            locked = await writes.lock(conn, auction_id)
            if locked is None:
                raise AuctionNotFound()
            events = await work(conn, locked[0], locked[1])
            if events:
                names = await store.display_names(conn, wire.people(events))
                payloads = wire.publications(auction_id, events, names)
                number = await writes.record_publication(conn, auction_id, payloads)
                announcement = (number, payloads)
        await announce(pool, publisher, auction_id, announcement, timeout_s=5.0)
        return events
