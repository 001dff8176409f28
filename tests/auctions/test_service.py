"""The auction service over real PostgreSQL and Redis: durable sequencing, idempotency, checks
and audit of bids (other domains through in-memory twins). Closing and settlement:
test_closing.py."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import uuid
import weakref
from collections.abc import Awaitable

import pytest

from auctions import engine, store
from auctions.batch import BidAck
from auctions.errors import (
    BidQueueFull,
    BidTooLow,
    InsufficientFunds,
)
from auctions.model import BidKind
from auctions.owners import BidRouter
from core.context import Runtime
from core.errors import (
    Forbidden,
    IdempotencyKeyReused,
    RateLimited,
    ServiceUnavailable,
    ValidationFailed,
)
from tests.auctions.conftest import Env, make_env
from tests.conftest import TIMING_FACTOR, Register


async def test_bid_is_committed_before_ack_and_broadcast(env: Env, register: Register) -> None:
    seller = await register("seller")
    alice = await register("buyer", name="Alice")
    env.funds.credit(uuid.UUID(alice.id), 100_000)
    row = await env.auction(seller)
    aid = row.auction.rules.auction_id
    ack = await env.svc.place_bid(env.principal(alice), aid, amount=5_000, bid_id=uuid.uuid4())
    assert (ack.seq, ack.price, ack.leading, ack.replayed) == (1, 1_000, True, False)
    stored = await store.get(env.rt.pool, aid)
    assert stored is not None
    assert (stored.auction.seq, stored.auction.price, stored.auction.leader) == (
        1, 1_000, uuid.UUID(alice.id))
    [event] = env.published(aid)
    assert event["type"] == "bid"
    assert (event["seq"], event["price"], event["leader"]) == (1, 1_000, "Alice")
    assert 5_000 not in event.values()  # the maximum stays hidden


async def test_bid_id_retry_returns_first_answer(env: Env, register: Register) -> None:
    seller, buyer = await register("seller"), await register("buyer")
    env.funds.credit(uuid.UUID(buyer.id), 100_000)
    aid = (await env.auction(seller)).auction.rules.auction_id
    bid_id = uuid.uuid4()
    first = await env.svc.place_bid(env.principal(buyer), aid, amount=2_000, bid_id=bid_id)
    again = await env.svc.place_bid(env.principal(buyer), aid, amount=2_000, bid_id=bid_id)
    assert again.replayed
    assert (again.seq, again.price, again.amount) == (first.seq, first.price, first.amount)
    with pytest.raises(IdempotencyKeyReused):
        await env.svc.place_bid(env.principal(buyer), aid, amount=3_000, bid_id=bid_id)
    records, _ = await store.history(env.rt.pool, aid)
    assert len(records) == 1
    outcomes = [a["outcome"] for a in await store.attempt_page(env.rt.pool, aid, after=0,
                                                               limit=10)]
    assert outcomes == ["accepted", "duplicate", "idempotency_key_reused"]


async def test_a_refused_bid_is_freed_without_the_garbage_collector(
    env: Env, register: Register
) -> None:
    """A refusal must not sit in a reference cycle (refusal → traceback → frame → request →
    future → refusal): at thousands of refusals a second those cycles filled the collector's
    older generations and made its pauses long."""
    seller, buyer = await register("seller"), await register("buyer")
    env.funds.credit(uuid.UUID(buyer.id), 100_000)
    aid = (await env.auction(seller)).auction.rules.auction_id
    await env.svc.place_bid(env.principal(buyer), aid, amount=2_000, bid_id=uuid.uuid4())
    await refusal_is_freed_by_refcounting(
        env.svc.place_bid(env.principal(buyer), aid, amount=1_000, kind=BidKind.EXACT,
                          bid_id=uuid.uuid4()))


async def refusal_is_freed_by_refcounting(bid: Awaitable[object]) -> None:
    """Await `bid` (refused: too low) with the collector off; its refusal must be freed."""
    gc.disable()
    try:
        try:
            await bid
        except BidTooLow as exc:
            refusal = weakref.ref(exc)
        else:
            pytest.fail("the bid below the price was accepted")
        for _ in range(int(200 * TIMING_FACTOR)):  # until the writer has let go of its batch
            if refusal() is None:
                break
            await asyncio.sleep(0.005)
        assert refusal() is None, gc.get_referrers(refusal())
    finally:
        gc.enable()


async def test_a_refusal_forwarded_by_the_router_is_freed_without_the_collector(
    env: Env, rt: Runtime, register: Register
) -> None:
    """The same for a bid another process sequences (`AUCTION_ROUTING`): the forwarding
    side's refusal must not keep its forward future (which holds the refusal) alive."""
    seller, buyer = await register("seller"), await register("buyer")
    env.funds.credit(uuid.UUID(buyer.id), 100_000)
    aid = (await env.auction(seller)).auction.rules.auction_id
    other = make_env(rt)
    prefix = f"{rt.settings.redis_prefix}route-{uuid.uuid4().hex[:6]}:"
    owner = BidRouter(rt.redis, env.svc.sequencer, prefix=prefix)
    forwarder = BidRouter(rt.redis, other.svc.sequencer, prefix=prefix)
    await owner.start()
    await forwarder.start()
    env.svc.route_bids(owner)
    other.svc.route_bids(forwarder)
    try:
        await env.svc.place_bid(env.principal(buyer), aid, amount=2_000, bid_id=uuid.uuid4())
        await refusal_is_freed_by_refcounting(
            other.svc.place_bid(env.principal(buyer), aid, amount=1_000, kind=BidKind.EXACT,
                                bid_id=uuid.uuid4()))
        # the owner sequenced (and refused) it, not the forwarding side
        too_low = {"outcome": "bid_too_low"}
        assert env.svc.sequencer.metrics.registry.get_sample_value(
            "souk_auction_bid_attempts_total", too_low) == 1
        assert not other.svc.sequencer.metrics.registry.get_sample_value(
            "souk_auction_bid_attempts_total", too_low)
    finally:
        await forwarder.aclose()
        await owner.aclose()
        await other.svc.aclose()


async def test_hot_auctions_take_turns_within_the_writers_connection_budget(
    rt: Runtime, register: Register,
) -> None:
    """With one connection for the bid writers, an auction whose bids never stop does not keep
    it: a second auction's bid is recorded while the first is still being bid on, and the
    writers never hold more than the budget."""
    env = make_env(rt, writer_connections=1)
    try:
        seller = await register("seller")
        buyers = await env.buyers(4, funds=10**9)
        busy = (await env.auction(seller)).auction.rules.auction_id
        other = (await env.auction(seller)).auction.rules.auction_id
        metric = env.svc.sequencer.metrics.registry.get_sample_value
        held: list[float] = []
        going, done = asyncio.Event(), asyncio.Event()

        async def bidder(i: int) -> None:
            amount = 1_000 + i
            while not done.is_set():
                amount += 4_000
                with contextlib.suppress(BidTooLow):
                    await env.svc.place_bid(env.principal(buyers[i]), busy, amount=amount,
                                            bid_id=uuid.uuid4())
                held.append(metric("souk_auction_writer_connections") or 0.0)
                going.set()

        # four bids of each buyer always on their way: the busy auction's queue never empties
        stream = [asyncio.create_task(bidder(i)) for i in range(3) for _ in range(4)]
        try:
            await going.wait()
            async with asyncio.timeout(10):
                ack = await env.svc.place_bid(env.principal(buyers[3]), other, amount=2_000,
                                              bid_id=uuid.uuid4())
            assert ack.seq == 1
            assert not done.is_set() and not any(t.done() for t in stream)
        finally:
            done.set()
            await asyncio.gather(*stream)
        assert max(held) == 1.0
        assert (metric("souk_auction_writer_connection_waits_total") or 0) >= 1
    finally:
        await env.svc.aclose()


async def test_concurrent_bidders_get_gapless_sequence(env: Env, register: Register) -> None:
    seller = await register("seller")
    buyers = await env.buyers(8, funds=10**9)
    aid = (await env.auction(seller, soft_close_s=0)).auction.rules.auction_id

    async def bidder(i: int) -> list[int]:
        seqs = []
        for n in range(25):
            try:
                ack = await env.svc.place_bid(env.principal(buyers[i]), aid,
                                              amount=1_000 + (n * 8 + i) * 700,
                                              bid_id=uuid.uuid4())
                seqs.append(ack.seq)
            except BidTooLow:
                pass
        return seqs

    acked = [s for seqs in await asyncio.gather(*(bidder(i) for i in range(8))) for s in seqs]
    records, _ = await store.history(env.rt.pool, aid)
    assert sorted(acked) == [r.seq for r in records] == list(range(1, len(records) + 1))
    # Broadcasts went out in seq order, one per accepted bid.
    published = [e["seq"] for e in env.published(aid) if e["type"] == "bid"]
    assert published == list(range(1, len(records) + 1))
    # The stored state is exactly the replay of the stored bids.
    row = await store.get(env.rt.pool, aid)
    assert row is not None
    assert engine.replay(row.auction.rules, records) == row.auction
    metric = env.svc.sequencer.metrics.registry.get_sample_value
    # group commit happened: some batch held more than one bid
    assert metric("souk_auction_batch_size_bucket", {"le": "1.0"}) < metric(
        "souk_auction_batch_size_count")
    attempts = await store.attempt_page(env.rt.pool, aid, after=0, limit=500)
    assert len(attempts) == 200
    # the metrics count what the audit holds, and every answer was timed
    by_outcome = collections.Counter(a["outcome"] for a in attempts)
    for outcome, n in by_outcome.items():
        assert metric("souk_auction_bid_attempts_total", {"outcome": outcome}) == n
    assert metric("souk_auction_bid_ack_seconds_count") == 200


async def test_two_sequencers_on_one_auction_stay_gapless(env: Env, register: Register) -> None:
    """Two service instances with their own pools and writers (as in two processes) serialise
    on the database: one gapless sequence, broadcasts in order."""
    import asyncpg

    from auctions.service import AuctionService, AuctionSettings
    from core.db import create_pool

    seller = await register("seller")
    buyers = await env.buyers(6, funds=10**9)
    aid = (await env.auction(seller, soft_close_s=0)).auction.rules.auction_id
    s = env.rt.settings
    pool2: asyncpg.Pool = await create_pool(s.database_url, schema=s.database_schema,
                                            min_size=1, max_size=4)
    other = AuctionService(pool2, publisher=env.publisher, funds=env.funds, orders=env.orders,
                           variants=env.variants, limiter=None, settings=AuctionSettings())
    try:
        async def bidder(i: int) -> None:
            svc = env.svc if i % 2 else other
            for n in range(20):
                with contextlib.suppress(BidTooLow):
                    await svc.place_bid(env.principal(buyers[i]), aid,
                                        amount=2_000 + (n * 6 + i) * 500, bid_id=uuid.uuid4())

        await asyncio.gather(*(bidder(i) for i in range(6)))
    finally:
        await other.aclose()
        await pool2.close()
    records, _ = await store.history(env.rt.pool, aid)
    assert [r.seq for r in records] == list(range(1, len(records) + 1))
    published = [e["seq"] for e in env.published(aid) if e["type"] == "bid"]
    assert published == list(range(1, len(records) + 1))
    row = await store.get(env.rt.pool, aid)
    assert row is not None
    assert engine.replay(row.auction.rules, records) == row.auction


async def test_checks_before_sequencing(env: Env, register: Register) -> None:
    seller, buyer = await register("seller"), await register("buyer")
    aid = (await env.auction(seller)).auction.rules.auction_id
    with pytest.raises(InsufficientFunds):
        await env.svc.place_bid(env.principal(buyer), aid, amount=1_000, bid_id=uuid.uuid4())
    with pytest.raises(Forbidden):  # only buyers bid (sellers included, own auction or not)
        await env.svc.place_bid(env.principal(seller), aid, amount=1_000, bid_id=uuid.uuid4())
    with pytest.raises(ValidationFailed):
        await env.svc.place_bid(env.principal(buyer), aid, amount=0, bid_id=uuid.uuid4())
    env.funds.credit(uuid.UUID(buyer.id), 1_000)
    # The refusal's audit row was queued first and is written with (or before) this batch.
    await env.svc.place_bid(env.principal(buyer), aid, amount=1_000, bid_id=uuid.uuid4())
    outcomes = [a["outcome"] for a in await store.attempt_page(env.rt.pool, aid, after=0,
                                                               limit=10)]
    assert outcomes == ["insufficient_funds", "accepted"]


async def test_funds_are_checked_once_per_batch_and_a_failed_check_records_nothing(
    env: Env, register: Register,
) -> None:
    """The wallets of a batch's bidders are read in one ledger query; a bid the wallet does
    not cover is refused, recorded and answered with the batch; when the ledger cannot be
    read the batch is answered 503 and nothing is recorded."""
    seller = await register("seller")
    rich, poor = await register("buyer", name="Rich"), await register("buyer", name="Poor")
    env.funds.credit(uuid.UUID(rich.id), 100_000)
    aid = (await env.auction(seller)).auction.rules.auction_id
    real = env.funds.available_many
    calls: list[list[uuid.UUID]] = []
    failing = [False]

    async def counting(conn: object, user_ids: list[uuid.UUID],
                       currency: str) -> dict[uuid.UUID, int]:
        calls.append(user_ids)
        if failing[0]:
            raise OSError("ledger unreachable")
        return await real(None, user_ids, currency)

    env.funds.available_many = counting  # type: ignore[method-assign]
    metric = env.svc.sequencer.metrics.registry.get_sample_value
    batches = metric("souk_auction_batches_total")
    results = await asyncio.gather(*(
        env.svc.place_bid(env.principal(user), aid, amount=amount, bid_id=uuid.uuid4())
        for user, amount in ((rich, 2_000), (poor, 3_000))), return_exceptions=True)
    assert isinstance(results[0], BidAck) and results[0].seq == 1
    assert isinstance(results[1], InsufficientFunds)
    assert len(calls) == metric("souk_auction_batches_total") - batches  # one query per batch
    failing[0] = True
    # above the balance read a moment ago: the ledger is read again (and fails here)
    with pytest.raises(ServiceUnavailable):
        await env.svc.place_bid(env.principal(rich), aid, amount=200_000, bid_id=uuid.uuid4())
    outcomes = sorted(a["outcome"] for a in await store.attempt_page(env.rt.pool, aid, after=0,
                                                                     limit=10))
    assert outcomes == ["accepted", "insufficient_funds"]


async def test_a_balance_that_covers_the_next_bids_is_trusted_for_a_moment(
    rt: Runtime, register: Register,
) -> None:
    """Within `funds_cache_s` a bidder's next bids that the balance read covers skip the
    ledger query; a bid it does not cover, or one after that time, reads the ledger; a top-up
    counts at once for a bid that was refused."""
    env = make_env(rt, funds_cache_s=0.3)
    try:
        seller, buyer = await register("seller"), await register("buyer")
        who = uuid.UUID(buyer.id)
        env.funds.credit(who, 10_000)
        aid = (await env.auction(seller)).auction.rules.auction_id
        metric = env.svc.sequencer.metrics.registry.get_sample_value

        def reads(source: str) -> float:
            return metric("souk_auction_funds_checks_total", {"source": source}) or 0.0

        async def bid(amount: int) -> BidAck:
            return await env.svc.place_bid(env.principal(buyer), aid, amount=amount,
                                           bid_id=uuid.uuid4())

        await bid(2_000)
        await bid(3_000)  # covered by the 10,000 read for the first
        assert (reads("ledger"), reads("cache")) == (1, 1)
        with pytest.raises(InsufficientFunds):
            await bid(20_000)  # not covered: the ledger is asked, and says no
        env.funds.credit(who, 20_000)
        await bid(20_000)  # refused a moment ago; the top-up counts at once
        assert (reads("ledger"), reads("cache")) == (3, 1)
        await asyncio.sleep(0.35)
        await bid(21_000)  # covered, but read too long ago
        assert (reads("ledger"), reads("cache")) == (4, 1)
    finally:
        await env.svc.aclose()


async def test_a_failing_batch_answers_its_bids_and_the_writer_goes_on(
    env: Env, register: Register,
) -> None:
    """An unexpected error while recording a batch answers its bids 503 (nothing recorded,
    the auction unlocked) and the auction's writer keeps serving the next bids."""
    seller, buyer = await register("seller"), await register("buyer")
    env.funds.credit(uuid.UUID(buyer.id), 100_000)
    aid = (await env.auction(seller)).auction.rules.auction_id
    real = env.funds.available_many
    calls = [0]

    async def broken_once(conn: object, user_ids: list[uuid.UUID],
                          currency: str) -> dict[uuid.UUID, int]:
        calls[0] += 1
        if calls[0] == 1:
            raise RuntimeError("a bug")
        return await real(None, user_ids, currency)

    env.funds.available_many = broken_once  # type: ignore[method-assign]
    with pytest.raises(ServiceUnavailable):
        await env.svc.place_bid(env.principal(buyer), aid, amount=2_000, bid_id=uuid.uuid4())
    ack = await env.svc.place_bid(env.principal(buyer), aid, amount=3_000, bid_id=uuid.uuid4())
    assert ack.seq == 1
    metric = env.svc.sequencer.metrics.registry.get_sample_value
    assert metric("souk_auction_batch_failures_total") == 1
    assert metric("souk_auction_batches_total") == 1
    # the lock was never left taken: another writer (an admin cancel) gets it at once
    admin = await register("admin")
    async with asyncio.timeout(5):
        await env.svc.cancel(env.principal(admin), aid, "test over")


async def test_bids_refused_as_overloaded_are_audited(rt: object, register: Register) -> None:
    """A full bid queue refuses with `bids_overloaded`, and those attempts are in the audit
    like every other one (written with the next batch)."""
    e = make_env(rt, max_queue=2)  # type: ignore[arg-type]
    try:
        seller = await register("seller")
        buyers = await e.buyers(12, funds=10**9)
        aid = (await e.auction(seller)).auction.rules.auction_id
        results = await asyncio.gather(*(
            e.svc.place_bid(e.principal(b), aid, amount=2_000 + 100 * i, bid_id=uuid.uuid4())
            for i, b in enumerate(buyers)), return_exceptions=True)
        overloaded = [r for r in results if isinstance(r, BidQueueFull)]
        assert overloaded and len(overloaded) < len(buyers)
        await e.svc.place_bid(e.principal(buyers[0]), aid, amount=90_000, bid_id=uuid.uuid4())
        rows = await store.attempt_page(e.rt.pool, aid, after=0, limit=100)
        assert len(rows) == len(buyers) + 1
        assert sum(r["outcome"] == "bids_overloaded" for r in rows) == len(overloaded)
    finally:
        await e.svc.aclose()


async def test_deposit_rule(app: object, rt: object, register: Register) -> None:
    e = make_env(rt, bid_deposit=500)  # type: ignore[arg-type]
    try:
        seller, buyer = await register("seller"), await register("buyer")
        e.funds.credit(uuid.UUID(buyer.id), 500)
        aid = (await e.auction(seller)).auction.rules.auction_id
        ack = await e.svc.place_bid(e.principal(buyer), aid, amount=50_000, bid_id=uuid.uuid4())
        assert ack.seq == 1
    finally:
        await e.svc.aclose()


async def test_rate_limit_per_user(rt: object, register: Register) -> None:
    e = make_env(rt, bid_rate=3, bid_rate_window_s=60)  # type: ignore[arg-type]
    try:
        seller, buyer = await register("seller"), await register("buyer")
        e.funds.credit(uuid.UUID(buyer.id), 10**9)
        aid = (await e.auction(seller)).auction.rules.auction_id
        for n in range(3):
            await e.svc.place_bid(e.principal(buyer), aid, amount=10_000 * (n + 1),
                                  bid_id=uuid.uuid4())
        with pytest.raises(RateLimited):
            await e.svc.place_bid(e.principal(buyer), aid, amount=90_000, bid_id=uuid.uuid4())
    finally:
        await e.svc.aclose()
