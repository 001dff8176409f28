"""The auction service over real PostgreSQL and Redis: closing exactly once, payment windows,
settlement, cancelling, the scheduler's announcements and pruning (other domains through
in-memory twins). Bidding: test_service.py."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest

from auctions import store
from auctions.announcements import GAP_RETRY_S
from auctions.errors import (
    AuctionNotOpen,
    BidTooLow,
    InvalidAuctionAction,
)
from auctions.model import BidKind, Outcome, State
from auctions.scheduler import CloseScheduler
from auctions.service import NewAuction
from core.errors import (
    Forbidden,
    ValidationFailed,
)
from tests.auctions.conftest import Env, make_env
from tests.conftest import TIMING_FACTOR, Register


async def test_close_exactly_once_with_order_and_capture(env: Env, register: Register) -> None:
    seller = await register("seller")
    a, b = await register("buyer", name="A"), await register("buyer", name="B")
    for x in (a, b):
        env.funds.credit(uuid.UUID(x.id), 100_000)
    aid = (await env.auction(seller)).auction.rules.auction_id
    await env.svc.place_bid(env.principal(a), aid, amount=9_000, bid_id=uuid.uuid4())
    await env.svc.place_bid(env.principal(b), aid, amount=4_000, bid_id=uuid.uuid4())
    assert await env.scheduler.close(aid) is False  # not due yet
    await env.expire(aid)
    with pytest.raises(AuctionNotOpen):  # no bid at or after the end, closed or not
        await env.svc.place_bid(env.principal(b), aid, amount=20_000, bid_id=uuid.uuid4())
    # Two schedulers (as in two processes) race: exactly one closes.
    other = make_env(env.rt)
    other.svc.orders = env.orders
    other.svc.funds = env.funds
    results = await asyncio.gather(env.scheduler.close(aid), other.scheduler.close(aid),
                                   env.scheduler.close(aid))
    assert sorted(results) == [False, False, True]
    closed = [e for e in env.published(aid) + other.published(aid) if e["type"] == "closed"]
    assert len(closed) == 1
    assert (closed[0]["outcome"], closed[0]["winner"], closed[0]["price"]) == ("sold", "A", 4_200)
    await asyncio.gather(env.scheduler.settle(aid), other.scheduler.settle(aid))
    await env.scheduler.run_once()
    assert len(env.orders.orders) == 1
    order = await env.order_of(aid)
    assert (order["amount"], order["buyer_id"], order["state"]) == (4_200, uuid.UUID(a.id),
                                                                    "paid")
    assert env.funds.balances[uuid.UUID(a.id)] == 100_000 - 4_200
    row = await store.get(env.rt.pool, aid)
    assert row is not None
    assert (row.auction.state, row.auction.outcome, row.payment_state) == (
        State.CLOSED, Outcome.SOLD, "captured")
    assert row.order_id == order["id"]
    assert order["unit_held"] is True  # the order takes over the unit the auction held
    await other.svc.aclose()


async def test_an_auction_holds_its_unit_until_it_ends_without_a_sale(
    env: Env, register: Register,
) -> None:
    """Creating an auction reserves a unit of its variant (none left: refused), so the item
    cannot be sold twice; a cancel or a close without a sale gives it back, once; a sale hands
    it to the winner's order."""
    seller, admin, buyer = (await register("seller"), await register("admin"),
                            await register("buyer"))
    env.funds.credit(uuid.UUID(buyer.id), 100_000)
    variant = env.variants.add(uuid.UUID(seller.id), units=1)

    async def listed() -> uuid.UUID:
        row = await env.svc.create(env.principal(seller), NewAuction(
            variant_id=variant, start_price=1_000, duration_s=60))
        assert env.variants.available[variant] == 0
        return row.auction.rules.auction_id

    first = await listed()
    with pytest.raises(ValidationFailed) as refused:
        await listed()
    assert [e.field for e in refused.value.errors] == ["variant_id"]
    await env.svc.cancel(env.principal(admin), first, "wrong photo")
    assert env.variants.available[variant] == 1
    with pytest.raises(InvalidAuctionAction):
        await env.svc.cancel(env.principal(admin), first, "again")
    assert env.variants.available[variant] == 1

    unsold = await listed()  # relisted
    await env.expire(unsold)
    assert await env.scheduler.close(unsold) is True  # no bid: no sale
    assert env.variants.available[variant] == 1
    assert await env.scheduler.close(unsold) is False
    assert env.variants.available[variant] == 1

    sold = await listed()
    await env.svc.place_bid(env.principal(buyer), sold, amount=2_000, bid_id=uuid.uuid4())
    await env.expire(sold)
    assert await env.scheduler.close(sold) is True
    await env.scheduler.settle(sold)
    assert env.variants.available[variant] == 0
    order = await env.order_of(sold)
    assert (order["unit_held"], order["state"]) == (True, "paid")


async def test_below_reserve_is_no_sale(env: Env, register: Register) -> None:
    seller, buyer = await register("seller"), await register("buyer")
    env.funds.credit(uuid.UUID(buyer.id), 100_000)
    aid = (await env.auction(seller, reserve_price=50_000)).auction.rules.auction_id
    await env.svc.place_bid(env.principal(buyer), aid, amount=20_000, bid_id=uuid.uuid4())
    await env.expire(aid)
    assert await env.scheduler.run_once() == (1, 0)
    [closed] = [e for e in env.published(aid) if e["type"] == "closed"]
    assert (closed["outcome"], closed["winner"], closed["reserve_met"]) == ("no_sale", None,
                                                                            False)
    assert env.orders.orders == {}


async def test_payment_window_then_failure(env: Env, register: Register) -> None:
    seller, buyer = await register("seller"), await register("buyer")
    env.funds.credit(uuid.UUID(buyer.id), 5_000)
    aid = (await env.auction(seller)).auction.rules.auction_id
    await env.svc.place_bid(env.principal(buyer), aid, amount=3_000, bid_id=uuid.uuid4())
    env.funds.balances[uuid.UUID(buyer.id)] = 0  # spent elsewhere before the close
    await env.expire(aid)
    await env.scheduler.run_once()
    row = await store.get(env.rt.pool, aid)
    assert row is not None
    assert row.payment_state == "awaiting_payment"
    assert (await env.order_of(aid))["state"] == "pending_payment"
    due = env.publisher.published[f"user:{buyer.id}"]
    assert due[0]["type"] == "auction_payment_due"
    # Still inside the window: the buyer tops up and the retry captures.
    env.funds.credit(uuid.UUID(buyer.id), 5_000)
    await env.scheduler.run_once()
    row = await store.get(env.rt.pool, aid)
    assert row is not None
    assert row.payment_state == "captured"
    assert (await env.order_of(aid))["state"] == "paid"


async def test_payment_window_expiry_cancels_order(env: Env, register: Register) -> None:
    seller, buyer = await register("seller"), await register("buyer")
    env.funds.credit(uuid.UUID(buyer.id), 5_000)
    aid = (await env.auction(seller)).auction.rules.auction_id
    await env.svc.place_bid(env.principal(buyer), aid, amount=3_000, bid_id=uuid.uuid4())
    env.funds.balances[uuid.UUID(buyer.id)] = 0
    await env.expire(aid)
    await env.scheduler.run_once()
    await env.rt.pool.execute(
        "UPDATE auctions SET payment_due_at = clock_timestamp() - interval '1 second' "
        "WHERE id = $1", aid)
    await env.scheduler.run_once()
    row = await store.get(env.rt.pool, aid)
    assert row is not None
    assert row.payment_state == "failed"
    assert (await env.order_of(aid))["state"] == "cancelled"
    assert env.published(aid)[-1]["type"] == "payment_failed"
    await env.scheduler.run_once()  # nothing more happens
    assert len(env.orders.orders) == 1


async def test_buy_now_closes_and_settles(env: Env, register: Register) -> None:
    seller, buyer = await register("seller"), await register("buyer")
    env.funds.credit(uuid.UUID(buyer.id), 50_000)
    aid = (await env.auction(seller, buy_now_price=30_000)).auction.rules.auction_id
    ack = await env.svc.place_bid(env.principal(buyer), aid, amount=0, kind=BidKind.BUY_NOW,
                                  bid_id=uuid.uuid4())
    assert (ack.seq, ack.price) == (1, 30_000)
    assert [e["type"] for e in env.published(aid)] == ["bid", "closed"]
    assert await env.scheduler.run_once() == (0, 1)
    assert (await env.order_of(aid))["state"] == "paid"


async def test_admin_cancel_and_void(env: Env, register: Register) -> None:
    seller, admin = await register("seller"), await register("admin")
    a, b = await register("buyer", name="A"), await register("buyer", name="B")
    for x in (a, b):
        env.funds.credit(uuid.UUID(x.id), 100_000)
    aid = (await env.auction(seller)).auction.rules.auction_id
    await env.svc.place_bid(env.principal(a), aid, amount=2_000, bid_id=uuid.uuid4())
    await env.svc.place_bid(env.principal(b), aid, amount=9_000, bid_id=uuid.uuid4())
    with pytest.raises(Forbidden):
        await env.svc.void_bid(env.principal(seller), aid, 2, "no")
    assert await env.svc.void_bid(env.principal(admin), aid, 2, "shill bidding") == [2]
    row = await store.get(env.rt.pool, aid)
    assert row is not None
    assert (row.auction.leader, row.auction.price, row.auction.seq) == (uuid.UUID(a.id), 1_000,
                                                                        2)
    voided = env.published(aid)[-1]
    assert (voided["type"], voided["voided_seq"], voided["price"], voided["leader"]) == (
        "bid_voided", 2, 1_000, "A")
    # Bidding continues after the void with seq 3.
    ack = await env.svc.place_bid(env.principal(b), aid, amount=1_500, kind=BidKind.EXACT,
                                  bid_id=uuid.uuid4())
    assert ack.seq == 3
    with pytest.raises(InvalidAuctionAction):  # bids placed: not the seller's to cancel
        await env.svc.cancel(env.principal(seller), aid, "changed my mind")
    await env.svc.cancel(env.principal(admin), aid, "counterfeit item")
    assert env.published(aid)[-1] == {"auction_id": str(aid), "seq": 3, "type": "cancelled",
                                      "reason": "counterfeit item"}
    with pytest.raises(InvalidAuctionAction):
        await env.svc.cancel(env.principal(admin), aid, "again")
    with pytest.raises(AuctionNotOpen):
        await env.svc.place_bid(env.principal(a), aid, amount=90_000, bid_id=uuid.uuid4())
    actions = await env.rt.pool.fetch(
        "SELECT action, seq, reason FROM auction_admin_actions WHERE auction_id = $1 ORDER BY id",
        aid)
    assert [(r["action"], r["seq"], r["reason"]) for r in actions] == [
        ("void_bid", 2, "shill bidding"), ("cancel", None, "counterfeit item")]
    assert await env.scheduler.run_once() == (0, 0)  # cancelled auctions never close


async def test_a_seller_cancels_their_own_auction_before_its_first_bid(
    env: Env, register: Register,
) -> None:
    seller, other, buyer = (await register("seller"), await register("seller"),
                            await register("buyer"))
    row = await env.auction(seller)
    aid = row.auction.rules.auction_id
    for who in (other, buyer):
        with pytest.raises(Forbidden):
            await env.svc.cancel(env.principal(who), aid, "not mine")
    await env.svc.cancel(env.principal(seller), aid, "wrong photo")
    assert env.published(aid)[-1]["type"] == "cancelled"
    assert env.variants.available[row.variant_id] == 1  # back on sale
    actions = await env.rt.pool.fetch(
        "SELECT actor_id, action, reason FROM auction_admin_actions WHERE auction_id = $1", aid)
    assert [(r["actor_id"], r["action"], r["reason"]) for r in actions] == [
        (uuid.UUID(seller.id), "cancel", "wrong photo")]


async def test_scheduled_auction_refuses_early_bids(env: Env, register: Register) -> None:
    seller, buyer = await register("seller"), await register("buyer")
    env.funds.credit(uuid.UUID(buyer.id), 100_000)
    now = await store.now_ms(env.rt.pool)
    row = await env.auction(seller, starts_at_ms=now + 3_600_000)
    assert row.auction.state is State.SCHEDULED
    with pytest.raises(AuctionNotOpen):
        await env.svc.place_bid(env.principal(buyer), row.auction.rules.auction_id,
                                amount=5_000, bid_id=uuid.uuid4())


async def test_running_auctions_closes_in_the_background(rt: object, register: Register) -> None:
    from auctions.runtime import running_auctions
    from auctions.service import AuctionSettings
    from auctions.twins import MemoryFunds, MemoryOrders, MemoryPublisher, MemoryVariants

    e = make_env(rt)  # type: ignore[arg-type]
    seller, buyer = await register("seller"), await register("buyer")
    funds, orders, variants = MemoryFunds(), MemoryOrders(), MemoryVariants()
    funds.credit(uuid.UUID(buyer.id), 50_000)
    async with running_auctions(
        e.rt.pool, limiter=e.rt.limiter, settings=AuctionSettings(close_poll_s=0.02),
        publisher=MemoryPublisher(), funds=funds, orders=orders, variants=variants,
    ) as svc:
        e.svc, e.variants = svc, variants
        aid = (await e.auction(seller, buy_now_price=30_000)).auction.rules.auction_id
        await svc.place_bid(e.principal(buyer), aid, amount=0, kind=BidKind.BUY_NOW,
                            bid_id=uuid.uuid4())
        for _ in range(int(500 * TIMING_FACTOR)):  # the scheduler settles it (woken by the close)
            if [o["state"] for o in orders.orders.values()] == ["paid"]:  # the one order
                break
            await asyncio.sleep(0.01)
    assert [o["state"] for o in orders.orders.values()] == ["paid"]


async def test_a_lost_last_announcement_is_published_by_the_schedulers_check(
    env: Env, register: Register,
) -> None:
    """As if the process died between a batch's COMMIT and its publication, and nobody bid on
    the auction again: the closing scheduler's check publishes it from PostgreSQL once it is
    `quiet_s` old, tries again while Redis fails, and then looks at each recorded announcement
    once."""
    seller = await register("seller")
    alice, bob = await env.buyers(2, funds=1_000_000)
    aid = (await env.auction(seller)).auction.rules.auction_id
    checker = CloseScheduler(env.svc, quiet_s=0.5)
    await env.svc.place_bid(env.principal(alice), aid, amount=2_000, bid_id=uuid.uuid4())
    await asyncio.sleep(0.6)
    assert await checker.check_announcements() == 0  # it was out
    real = env.publisher.announce
    lost = asyncio.Event()

    async def loses_it(channel: str, number: int, items: list[dict[str, object]],
                       *, after_gap: bool = False) -> object:
        lost.set()
        raise ConnectionError("the bus went away")

    env.publisher.announce = loses_it  # type: ignore[method-assign]
    await env.svc.place_bid(env.principal(bob), aid, amount=3_000, bid_id=uuid.uuid4())
    await lost.wait()
    assert [e["seq"] for e in env.published(aid)] == [1]
    assert await checker.check_announcements() == 0  # too recent: its writer may be on it
    await asyncio.sleep(0.6)
    assert await checker.check_announcements() == 0  # Redis still fails: tried again next time
    env.publisher.announce = real  # type: ignore[method-assign]
    assert await checker.check_announcements() == 1
    assert [e["seq"] for e in env.published(aid)] == [1, 2]
    assert env.svc.sequencer.metrics.registry.get_sample_value(
        "souk_auction_announcements_repaired_total") == 1
    await asyncio.sleep(0.6)
    assert await checker.check_announcements() == 0
    assert [e["seq"] for e in env.published(aid)] == [1, 2]


async def test_the_scheduler_prunes_announcements_past_the_keep_time_in_batches(
    env: Env, register: Register,
) -> None:
    """Recorded announcements older than `publications_keep_s` are deleted by every running
    scheduler, in batches until none is left; recent ones stay."""
    seller = await register("seller")
    aid = (await env.auction(seller)).auction.rules.auction_id
    keep_s = env.svc.settings.publications_keep_s
    await env.rt.pool.execute(
        """INSERT INTO auction_publications (auction_id, pub_seq, payloads, created_at)
           SELECT $1, n, '[]'::jsonb, clock_timestamp() - make_interval(secs => $2 + 60)
           FROM generate_series(1, 7) AS n""", aid, keep_s)
    await env.rt.pool.execute("UPDATE auctions SET pub_seq = 7 WHERE id = $1", aid)
    await env.svc.place_bid(env.principal((await env.buyers(1, funds=10_000))[0]), aid,
                            amount=2_000, bid_id=uuid.uuid4())  # its announcement: pub_seq 8

    async def kept() -> list[int]:
        rows = await env.rt.pool.fetch(
            "SELECT pub_seq FROM auction_publications WHERE auction_id = $1 ORDER BY pub_seq",
            aid)
        return [r["pub_seq"] for r in rows]

    assert await kept() == list(range(1, 9))
    pruner = CloseScheduler(env.svc, prune_batch=3)
    assert await pruner.prune_publications() == 7  # batches of 3, 3 and 1
    assert await kept() == [8]
    assert env.svc.sequencer.metrics.registry.get_sample_value(
        "souk_auction_publications_pruned_total") == 7
    assert await pruner.prune_publications() == 0

    await env.rt.pool.execute(
        """INSERT INTO auction_publications (auction_id, pub_seq, payloads, created_at)
           VALUES ($1, 1, '[]'::jsonb, clock_timestamp() - make_interval(secs => $2 + 1))""",
        aid, keep_s)
    running = asyncio.create_task(CloseScheduler(env.svc, prune_every_s=0.05).run())
    try:
        for _ in range(int(500 * TIMING_FACTOR)):  # 10 s
            if await kept() == [8]:
                break
            await asyncio.sleep(0.02)
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
    assert await kept() == [8]


async def test_attempts_of_long_ended_auctions_are_pruned_when_a_keep_time_is_set(
    env: Env, register: Register,
) -> None:
    """With `attempts_keep_s`, the scheduler deletes the attempt rows of auctions that ended
    longer ago; live and recently ended auctions keep theirs, and accepted bids always stay.
    Without it (the default) nothing is deleted."""
    seller = await register("seller")
    [buyer] = await env.buyers(1, funds=1_000_000)
    aids = [(await env.auction(seller)).auction.rules.auction_id for _ in range(3)]
    for aid in aids:
        await env.svc.place_bid(env.principal(buyer), aid, amount=2_000, bid_id=uuid.uuid4())
        with pytest.raises(BidTooLow):
            await env.svc.place_bid(env.principal(buyer), aid, amount=1_000, kind=BidKind.EXACT,
                                    bid_id=uuid.uuid4())
    old, recent, live = aids
    for aid in (old, recent):
        await env.expire(aid)
        assert await env.scheduler.close(aid) is True
    await env.rt.pool.execute(
        "UPDATE auctions SET closed_at = closed_at - interval '3 days' WHERE id = $1", old)

    async def rows(table: str) -> dict[uuid.UUID, int]:
        found = await env.rt.pool.fetch(
            f"SELECT auction_id, count(*) AS n FROM {table} GROUP BY auction_id")
        return {r["auction_id"]: r["n"] for r in found}

    assert await CloseScheduler(env.svc).prune_publications() == 0  # default: keep for good
    assert await rows("auction_bid_attempts") == {old: 2, recent: 2, live: 2}
    keeping = make_env(env.rt, attempts_keep_s=2 * 86_400)
    assert await CloseScheduler(keeping.svc, prune_batch=1).prune_publications() == 2
    assert await rows("auction_bid_attempts") == {recent: 2, live: 2}
    assert await rows("auction_bids") == {old: 1, recent: 1, live: 1}
    assert keeping.svc.sequencer.metrics.registry.get_sample_value(
        "souk_auction_attempts_pruned_total") == 2
    await keeping.svc.aclose()


async def test_an_announcement_lost_after_commit_is_published_by_the_next_commit(
    env: Env, register: Register,
) -> None:
    """As if the process died (or Redis failed) between a batch's COMMIT and its
    publication: the next commit on the auction finds the gap and publishes the lost
    announcement from PostgreSQL first, so watchers see every bid, in order."""
    seller = await register("seller")
    alice, bob = await register("buyer", name="Alice"), await register("buyer", name="Bob")
    for user in (alice, bob):
        env.funds.credit(uuid.UUID(user.id), 1_000_000)
    aid = (await env.auction(seller)).auction.rules.auction_id
    real = env.publisher.announce
    calls: list[int] = []
    all_out = asyncio.Event()

    async def loses_the_second(channel: str, number: int, items: list[dict[str, object]],
                               *, after_gap: bool = False) -> object:
        calls.append(number)
        if len(calls) == 2:
            raise ConnectionError("the bus went away")
        result = await real(channel, number, items, after_gap=after_gap)
        if len(env.published(aid)) == 3:
            all_out.set()
        return result

    env.publisher.announce = loses_the_second  # type: ignore[method-assign]
    for user, amount in ((alice, 2_000), (bob, 3_000), (alice, 5_000)):
        await env.svc.place_bid(env.principal(user), aid, amount=amount, bid_id=uuid.uuid4())
    # the bidder is answered once the publication is sent; filling the gap takes longer
    async with asyncio.timeout(5):
        await all_out.wait()
    assert [e["seq"] for e in env.published(aid)] == [1, 2, 3]
    # 3 met the gap, waited a little for 2, then 2 came from auction_publications first
    assert calls == [1, 2] + [3] * (1 + len(GAP_RETRY_S)) + [2, 3]
    stored = await store.get(env.rt.pool, aid)
    assert stored is not None and stored.pub_seq == 3
