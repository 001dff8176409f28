"""What the bid path's reads cost on the real PostgreSQL, whatever plan gets cached: a prepared
statement's (or a PL/pgSQL function's) generic plan is made once, often while the tables are
still empty, and then kept while an auction grows."""

from __future__ import annotations

import uuid
from datetime import timedelta

from auctions import store, writes
from tests.auctions.conftest import Env
from tests.conftest import Register


async def tuples_fetched(env: Env, table: str = "auction_bids") -> tuple[int, int]:
    """(tuples fetched through indexes, tuples read by sequential scans) of `table`."""
    async with env.rt.pool.acquire() as conn:
        await conn.execute("SELECT pg_stat_force_next_flush()")
    async with env.rt.pool.acquire() as conn:
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        row = await conn.fetchrow(
            "SELECT coalesce(idx_tup_fetch, 0) AS idx, coalesce(seq_tup_read, 0) AS seq "
            "FROM pg_stat_user_tables WHERE relid = $1::regclass", table)
    assert row is not None
    return int(row["idx"]), int(row["seq"])


async def test_the_retry_lookup_reads_one_bid_per_key_however_big_the_auction(
    env: Env, register: Register,
) -> None:
    """The batch's read (`lock_and_read`) looks up its (bidder, bid_id) pairs with one
    unique-index probe each: written as a join, the plan cached while the table was empty
    read every bid of the auction on every batch."""
    seller = await register("seller")
    aid = (await env.auction(seller)).auction.rules.auction_id
    # 400 accepted bids, stored directly
    bidders = [uuid.uuid4() for _ in range(400)]
    bid_ids = [uuid.uuid4() for _ in range(400)]
    await env.rt.pool.execute(
        """INSERT INTO auction_bids (auction_id, seq, bidder_id, bid_id, kind, amount,
               price_after, leader_after, ends_at_after, placed_at)
           SELECT $1, n, b, i, 'max', 1000 + n, 1000 + n, b, now(), now()
           FROM unnest($2::uuid[], $3::uuid[]) WITH ORDINALITY AS t(b, i, n)""",
        aid, bidders, bid_ids)
    keys = [(bidders[7], bid_ids[7]), (bidders[300], bid_ids[300])] + [
        (uuid.uuid4(), uuid.uuid4()) for _ in range(18)]
    async with env.rt.pool.acquire() as conn:
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        idx0, seq0 = await tuples_fetched(env)
        for _ in range(8):  # past the 5 custom plans a cached plan starts with
            locked = await writes.lock_and_read(conn, writes.advisory_key(aid), aid, keys)
            await writes.advisory_unlock(conn)
            assert locked is not None
            assert set(locked[2]) == {keys[0], keys[1]}
        await conn.execute("RESET plan_cache_mode")
    idx1, seq1 = await tuples_fetched(env)
    assert seq1 == seq0
    assert idx1 - idx0 == 8 * 2  # the two stored bids, each time; never the other 398


async def test_the_announcement_check_reads_only_the_recent_publications(
    env: Env, register: Register,
) -> None:
    """The scheduler's check (`latest_publications`) finds an auction's last recent
    announcement through the created_at index, not by reading every announcement kept."""
    seller = await register("seller")
    aid = (await env.auction(seller)).auction.rules.auction_id
    await env.rt.pool.execute(
        """INSERT INTO auction_publications (auction_id, pub_seq, payloads, created_at)
           SELECT $1, n, '[]'::jsonb, clock_timestamp() - interval '1 hour'
           FROM generate_series(1, 2000) AS n""", aid)
    await env.rt.pool.execute(
        """INSERT INTO auction_publications (auction_id, pub_seq, payloads)
           VALUES ($1, 2001, '[{"seq": 1}]'::jsonb), ($1, 2002, '[{"seq": 2}]'::jsonb)""", aid)
    await env.rt.pool.execute("ANALYZE auction_publications")
    now = store.from_ms(await store.now_ms(env.rt.pool))
    async with env.rt.pool.acquire() as conn:
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        idx0, seq0 = await tuples_fetched(env, "auction_publications")
        for _ in range(8):  # past the 5 custom plans a cached plan starts with
            latest, upto = await store.latest_publications(
                conn, after=now - timedelta(minutes=1), quiet_s=0)
            assert latest == [(aid, 2002, [{"seq": 2}])] and upto >= now
        await conn.execute("RESET plan_cache_mode")
    idx1, seq1 = await tuples_fetched(env, "auction_publications")
    assert seq1 == seq0
    assert idx1 - idx0 == 8 * 2  # the two recent ones, each time


async def test_pruning_deletes_only_old_announcements_oldest_first_through_the_index(
    env: Env, register: Register,
) -> None:
    """`prune_publications` deletes the announcements older than the keep time, oldest first,
    at most `limit` per call, and finds them through the created_at index: the table's recent
    announcements are never read."""
    seller = await register("seller")
    aid = (await env.auction(seller)).auction.rules.auction_id
    await env.rt.pool.execute(
        """INSERT INTO auction_publications (auction_id, pub_seq, payloads, created_at)
           SELECT $1, n, '[]'::jsonb, clock_timestamp() - make_interval(hours => 5 - n)
           FROM generate_series(1, 3) AS n""", aid)  # 4, 3 and 2 hours old
    await env.rt.pool.execute(
        """INSERT INTO auction_publications (auction_id, pub_seq, payloads)
           SELECT $1, n, '[]'::jsonb FROM generate_series(4, 2003) AS n""", aid)
    await env.rt.pool.execute("ANALYZE auction_publications")

    async with env.rt.pool.acquire() as conn:

        async def kept() -> list[int]:
            rows = await conn.fetch(
                "SELECT pub_seq FROM auction_publications WHERE auction_id = $1 AND pub_seq < 6"
                " ORDER BY pub_seq", aid)
            await conn.execute("SELECT pg_stat_force_next_flush()")  # counted before, not after
            return [r["pub_seq"] for r in rows]

        await conn.execute("SET plan_cache_mode = force_generic_plan")
        assert await writes.prune_publications(conn, keep_s=2.5 * 3600, limit=1) == 1
        assert await kept() == [2, 3, 4, 5]  # the oldest went first
        idx0, seq0 = await tuples_fetched(env, "auction_publications")
        deleted = [await writes.prune_publications(conn, keep_s=2.5 * 3600, limit=1)
                   for _ in range(7)]  # past the 5 custom plans a cached plan starts with
        await conn.execute("SELECT pg_stat_force_next_flush()")
        idx1, seq1 = await tuples_fetched(env, "auction_publications")
        await conn.execute("RESET plan_cache_mode")
        assert deleted == [1, 0, 0, 0, 0, 0, 0]
        assert seq1 == seq0
        assert idx1 - idx0 < 30  # a few per call: the old ones, the first recent one, the delete
        assert await kept() == [3, 4, 5]  # 2 hours old: kept (2.5 hours)
    assert await env.rt.pool.fetchval(
        "SELECT count(*) FROM auction_publications WHERE auction_id = $1", aid) == 2001
