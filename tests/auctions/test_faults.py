"""Faults at the service level (real PostgreSQL and Redis, real processes): a bidding process
killed with SIGKILL loses no acknowledged bid, and losing Redis's data changes nothing for
bids. (The same over the websocket hub with two uvicorn processes needs the hub: not here.)"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import redis.asyncio as aioredis

from auctions import engine, store
from auctions.model import BidKind
from tests.auctions.conftest import Env
from tests.conftest import TIMING_FACTOR, Register

ROOT = Path(__file__).resolve().parents[2]


async def test_sigkill_mid_auction_loses_no_acknowledged_bid(
    env: Env, register: Register, tmp_path: Path
) -> None:
    seller = await register("seller")
    bidders = await env.buyers(6)
    aid = (await env.auction(seller, soft_close_s=0, duration_s=600)).auction.rules.auction_id
    acks = tmp_path / "acks.jsonl"
    config = tmp_path / "config.json"
    s = env.rt.settings
    config.write_text(json.dumps({
        "dsn": s.database_url, "schema": s.database_schema, "auction_id": str(aid),
        "acks": str(acks), "bidders": [b.id for b in bidders[:3]],
    }))
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once, then polled
        [sys.executable, "-m", "tests.auctions.bid_worker", str(config)], cwd=ROOT,
        env=dict(os.environ))
    try:
        # Bid from this process too, so the two interleave on the same auction.
        deadline = asyncio.get_running_loop().time() + 60 * TIMING_FACTOR
        while asyncio.get_running_loop().time() < deadline:
            for b in bidders[3:]:
                env.funds.credit(uuid.UUID(b.id), 10**9)
                await env.svc.place_bid(env.principal(b), aid, amount=10**9,
                                        kind=BidKind.NEXT, bid_id=uuid.uuid4())
            if acks.exists() and len(acks.read_text().splitlines()) >= 150:
                break
        else:
            raise AssertionError("the worker acknowledged too few bids")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    acked = [json.loads(line) for line in acks.read_text().splitlines() if line.endswith("}")]
    records, _ = await store.history(env.rt.pool, aid)
    by_seq = {r.seq: r for r in records}
    for ack in acked:  # every acknowledged bid is there, exactly as acknowledged
        rec = by_seq[ack["seq"]]
        assert (str(rec.bidder), str(rec.bid_id), rec.price_after) == (
            ack["bidder"], ack["bid_id"], ack["price"])
    assert sorted(by_seq) == list(range(1, len(records) + 1))
    row = await store.get(env.rt.pool, aid)
    assert row is not None
    assert engine.replay(row.auction.rules, records) == row.auction
    # The survivor carries on from the next seq and closes the auction exactly once.
    b = bidders[3]
    ack = await env.svc.place_bid(env.principal(b), aid, amount=10**9, kind=BidKind.NEXT,
                                  bid_id=uuid.uuid4())
    assert ack.seq == len(records) + 1
    await env.expire(aid)
    assert await env.scheduler.run_once() == (1, 1)
    assert await env.scheduler.run_once() == (0, 0)
    assert len(env.orders.orders) == 1


async def test_redis_data_loss_changes_nothing_for_bids(env: Env, register: Register) -> None:
    seller = await register("seller")
    a, b = await register("buyer"), await register("buyer")
    for x in (a, b):
        env.funds.credit(uuid.UUID(x.id), 10**9)
    aid = (await env.auction(seller)).auction.rules.auction_id
    seqs = []
    for n in range(10):
        who = a if n % 2 else b
        ack = await env.svc.place_bid(env.principal(who), aid, amount=10**9,
                                      kind=BidKind.NEXT, bid_id=uuid.uuid4())
        seqs.append(ack.seq)
        if n == 4:  # everything this deployment keeps in Redis is gone
            client = aioredis.Redis.from_url(env.rt.settings.redis_url)
            keys = [k async for k in client.scan_iter(match=f"{env.rt.settings.redis_prefix}*")]
            if keys:
                await client.delete(*keys)
            await client.aclose()
    assert seqs == list(range(1, 11))
    records, _ = await store.history(env.rt.pool, aid)
    assert [r.seq for r in records] == seqs


async def test_two_processes_race_to_a_single_winner(
    env: Env, register: Register, tmp_path: Path
) -> None:
    """Two bidding processes (40 bidders) on one soft-close auction until it ends; each also
    runs the closing scheduler. Service level: watchers' view of the order needs the hub."""
    seller = await register("seller")
    bidders = await env.buyers(40)
    await env.rt.pool.execute(
        """CREATE TABLE race_orders (id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
               variant_id uuid NOT NULL, buyer_id uuid NOT NULL, amount bigint NOT NULL,
               state text NOT NULL)""")
    row = await env.auction(seller, duration_s=5, soft_close_s=2)
    aid = row.auction.rules.auction_id
    s = env.rt.settings
    procs = []
    for i in range(2):
        config = tmp_path / f"race{i}.json"
        config.write_text(json.dumps({
            "dsn": s.database_url, "schema": s.database_schema, "auction_id": str(aid),
            "acks": str(tmp_path / f"acks{i}.jsonl"), "seconds": 3.0,
            "bidders": [b.id for b in bidders[i * 20:(i + 1) * 20]],
        }))
        procs.append(subprocess.Popen(  # noqa: ASYNC220 - started once, then polled
            [sys.executable, "-m", "tests.auctions.bid_worker", str(config)], cwd=ROOT,
            env=dict(os.environ)))
    try:
        deadline = asyncio.get_running_loop().time() + 90 * TIMING_FACTOR
        while any(p.poll() is None for p in procs):
            assert asyncio.get_running_loop().time() < deadline, "workers did not finish"
            await asyncio.sleep(0.1)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
    assert [p.returncode for p in procs] == [0, 0]
    acked = [json.loads(line) for i in range(2)
             for line in (tmp_path / f"acks{i}.jsonl").read_text().splitlines()]
    records, _ = await store.history(env.rt.pool, aid)
    assert [r.seq for r in records] == list(range(1, len(records) + 1))
    assert sorted(a["seq"] for a in acked) == [r.seq for r in records]  # each seq acked once
    by_seq = {r.seq: r for r in records}
    for a in acked:
        assert (str(by_seq[a["seq"]].bid_id), by_seq[a["seq"]].price_after) == (a["bid_id"],
                                                                                 a["price"])
    final = await store.get(env.rt.pool, aid)
    assert final is not None
    last = records[-1]
    assert engine.replay(final.auction.rules, records) == replace_closed(final)
    assert final.auction.outcome is not None
    assert final.auction.outcome.value == "sold"
    assert (final.auction.leader, final.auction.price) == (last.leader_after, last.price_after)
    assert final.auction.closed_at is not None
    assert final.auction.closed_at >= final.auction.ends_at
    orders = await env.rt.pool.fetch("SELECT buyer_id, amount, state FROM race_orders")
    assert [(o["buyer_id"], o["amount"], o["state"]) for o in orders] == [
        (last.leader_after, last.price_after, "paid")]
    assert final.order_id is not None


def replace_closed(row: store.AuctionRow) -> object:
    """The row's auction as it was before closing (replay only covers bids)."""
    from dataclasses import replace

    from auctions.model import State

    return replace(row.auction, state=State.OPEN, outcome=None, closed_at=None)
