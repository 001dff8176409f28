"""Plans of the statements on the bid path, checked on the real PostgreSQL as they are cached:
a prepared statement's generic plan is made once, often while the tables are still empty."""

from __future__ import annotations

import uuid

from auctions import store
from core.context import Runtime


async def generic_plan(rt: Runtime, sql: str, *args: object) -> str:
    async with rt.pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        rows = await conn.fetch("EXPLAIN " + sql, *args)
    return "\n".join(r[0] for r in rows)


async def test_retry_lookup_probes_the_unique_index_on_an_empty_table(rt: Runtime) -> None:
    """The (bidder, bid_id) lookup of every batch must cost one index probe per bid, not a
    scan of the auction's bids: the plan made on the empty table stays cached while the
    auction grows (written as a join it was a bitmap scan of every bid and a hash join)."""
    pairs = [uuid.uuid4() for _ in range(20)]
    plan = await generic_plan(rt, store.READ_WITH_BIDS, uuid.uuid4(), pairs, pairs)
    assert "Hash" not in plan and "Bitmap" not in plan, plan
    assert "bidder_id = k.bidder_id" in plan and "bid_id = k.bid_id" in plan, plan
