"""The bid batch's read (`writes.lock_and_read`) on the real PostgreSQL: the rules a writer
already holds are reused, never another auction's."""

from __future__ import annotations

from auctions import writes
from tests.auctions.conftest import Env
from tests.conftest import Register


async def test_the_read_reuses_the_rules_it_is_given_for_the_same_auction_only(
    env: Env, register: Register,
) -> None:
    seller = await register("seller")
    first = (await env.auction(seller, increments=((0, 50), (5_000, 250)))).auction.rules
    other = (await env.auction(seller, start_price=2_000)).auction.rules
    aid = first.auction_id
    async with env.rt.pool.acquire() as conn:
        try:
            fresh = await writes.lock_and_read(conn, writes.advisory_key(aid), aid, [])
            assert fresh is not None
            assert fresh[0].auction.rules == first
            again = await writes.lock_and_read(conn, writes.advisory_key(aid), aid, [],
                                              rules=fresh[0].auction.rules)
            assert again is not None
            assert again[0].auction.rules is fresh[0].auction.rules  # not built again
            assert again[0].auction == fresh[0].auction
            mixed = await writes.lock_and_read(conn, writes.advisory_key(aid), aid, [], rules=other)
            assert mixed is not None
            assert mixed[0].auction.rules == first  # another auction's rules: read from the row
        finally:
            await writes.advisory_unlock(conn)
