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
    bidders = [await register("buyer") for _ in range(6)]
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
