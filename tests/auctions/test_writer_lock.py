"""A bid writer keeps the auction's lock (and the state it wrote) from one batch to the next
while nobody else wants it, on the real PostgreSQL: retries still get their first answer, and
another writer (closing, an admin action, another process) knocks and gets the lock after the
holder's next batch instead of waiting for its queue to empty."""

from __future__ import annotations

import asyncio
import uuid

from auctions import store
from auctions.errors import AuctionNotOpen, BidRejected
from auctions.sequencer import BidAck
from core.context import Runtime
from core.errors import IdempotencyKeyReused
from tests.auctions.conftest import Env, make_env
from tests.conftest import Register


def _metric(env: Env, name: str, **labels: str) -> float:
    return env.svc.sequencer.metrics.registry.get_sample_value(name, labels) or 0.0


async def _seqs_in_pg(env: Env, aid: uuid.UUID) -> list[int]:
    rows = await env.rt.pool.fetch(
        "SELECT seq FROM auction_bids WHERE auction_id = $1 ORDER BY seq", aid)
    return [r["seq"] for r in rows]


async def test_back_to_back_batches_keep_the_lock_and_the_state(
    rt: Runtime, register: Register,
) -> None:
    env = make_env(rt, max_batch=1)  # one bid per batch: twenty batches back to back
    try:
        seller = await register("seller")
        buyers = await env.buyers(4, funds=10**9)
        aid = (await env.auction(seller)).auction.rules.auction_id
        await env.svc.place_bid(env.principal(buyers[0]), aid, amount=1_500,
                                bid_id=uuid.uuid4())  # rules cached; the queue empties again
        acks = await asyncio.gather(*(
            env.svc.place_bid(env.principal(buyers[i % 4]), aid, amount=2_000 + 1_000 * i,
                              bid_id=uuid.uuid4())
            for i in range(20)))
        assert [a.seq for a in acks] == list(range(2, 22))
        assert await _seqs_in_pg(env, aid) == list(range(1, 22))
        assert _metric(env, "souk_auction_batches_total") == 21
        # The lock was read once for the first bid and once for the twenty (plus once after
        # each time it was let go for having been kept 0.5 s, on a very slow machine).
        held_max = _metric(env, "souk_auction_lock_releases_total", reason="held_max")
        assert _metric(env, "souk_auction_lock_reads_total", reason="taken") == 2 + held_max
        row = await store.get(env.rt.pool, aid)
        assert row is not None and row.auction.seq == 21 and row.pub_seq == 21
        # Every commit announced once, in order, with the state the writer kept.
        assert [e["seq"] for e in env.published(aid)] == list(range(1, 22))
    finally:
        await env.svc.aclose()


async def test_a_retry_under_a_kept_lock_gets_its_first_answer(
    rt: Runtime, register: Register,
) -> None:
    """A retry the engine would refuse by now (too low) and a reused bid_id the engine would
    accept both meet the write's checks; the batch is read and done again."""
    env = make_env(rt, max_batch=1)
    try:
        seller = await register("seller")
        a, b, c = await env.buyers(3, funds=10**9)
        aid = (await env.auction(seller)).auction.rules.auction_id
        first = uuid.uuid4()
        ack = await env.svc.place_bid(env.principal(a), aid, amount=2_000, bid_id=first)
        assert ack.seq == 1

        async def answer(who: object, amount: int, bid_id: uuid.UUID) -> BidAck | Exception:
            try:
                return await env.svc.place_bid(env.principal(who), aid,  # type: ignore[arg-type]
                                               amount=amount, bid_id=bid_id)
            except (BidRejected, IdempotencyKeyReused) as exc:
                return exc

        results = await asyncio.gather(
            answer(b, 5_000, uuid.uuid4()),  # takes the lock, keeps it
            answer(a, 2_000, first),  # refused as too low now, but accepted before: replayed
            answer(a, 90_000, first),  # accepted by the engine, but the bid_id is taken
            answer(c, 95_000, uuid.uuid4()),
        )
        accepted, replay, reused, last = results
        assert isinstance(accepted, BidAck) and accepted.seq == 2
        assert isinstance(replay, BidAck) and replay.replayed and replay.seq == 1
        assert replay.amount == 2_000
        assert isinstance(reused, IdempotencyKeyReused)
        assert isinstance(last, BidAck) and last.seq == 3
        assert _metric(env, "souk_auction_lock_reads_total", reason="conflict") == 2
        assert await _seqs_in_pg(env, aid) == [1, 2, 3]
        outcomes = await env.rt.pool.fetch(
            """SELECT outcome, seq FROM auction_bid_attempts WHERE auction_id = $1
               ORDER BY id""", aid)
        assert [(r["outcome"], r["seq"]) for r in outcomes] == [
            ("accepted", 1), ("accepted", 2), ("duplicate", 1),
            ("idempotency_key_reused", 1), ("accepted", 3)]
    finally:
        await env.svc.aclose()


async def test_a_knocking_writer_gets_the_lock_after_the_holders_next_batch(
    rt: Runtime, register: Register,
) -> None:
    """An admin cancels while a stream of bids keeps the writer busy: the cancel does not wait
    for the queue to empty, and no bid is accepted after it."""
    env = make_env(rt, max_batch=1)
    try:
        seller, admin = await register("seller"), await register("admin")
        buyers = await env.buyers(4, funds=10**9)
        aid = (await env.auction(seller)).auction.rules.auction_id
        await env.svc.place_bid(env.principal(buyers[0]), aid, amount=1_500,
                                bid_id=uuid.uuid4())
        answered = 0
        first = asyncio.Event()

        async def bid(i: int) -> BidAck | Exception:
            nonlocal answered
            try:
                return await env.svc.place_bid(env.principal(buyers[i % 4]), aid,
                                               amount=2_000 + 1_000 * i, bid_id=uuid.uuid4())
            except AuctionNotOpen as exc:
                return exc
            finally:
                answered += 1
                first.set()

        n = 200
        stream = [asyncio.create_task(bid(i)) for i in range(n)]
        await first.wait()  # the writer holds the lock now, with bids still queued
        await env.svc.cancel(env.principal(admin), aid, "counterfeit item")
        assert answered < n, "the cancel waited for the whole queue"
        results = await asyncio.gather(*stream)
        assert _metric(env, "souk_auction_lock_releases_total", reason="knocked") >= 1
        seqs = [r.seq for r in results if isinstance(r, BidAck)]
        refused = [r for r in results if isinstance(r, AuctionNotOpen)]
        assert seqs == list(range(2, 2 + len(seqs))) and len(refused) == n - len(seqs) > 0
        assert await _seqs_in_pg(env, aid) == list(range(1, 2 + len(seqs)))
        events = env.published(aid)
        assert events[-1]["type"] == "cancelled"
        assert [e["seq"] for e in events if e["type"] != "cancelled"] == list(
            range(1, 2 + len(seqs)))
    finally:
        await env.svc.aclose()
