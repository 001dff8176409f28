"""Bid load generator for hot auctions, at the service level (no HTTP, no websocket).

Drives `AuctionService.place_bid` — rate limit (Redis), funds check (in-memory twin),
sequencing and the PostgreSQL group commit — from N bidder coroutines in P processes that share
one auction (or `--auctions A`, the bidders spread over them), and reports acknowledgement
latency and throughput (with several auctions, also how evenly they were served). It isolates
itself in a fresh schema and Redis prefix, and drops both at the end.

    python -m loadtests.auction_bids --procs 2 --bidders 250 --rate 500 --seconds 20
    python -m loadtests.auction_bids --procs 2 --bidders 500 --rate 0 --seconds 15   # max
    python -m loadtests.auction_bids ... --mode pg-nodurable   # ack before commit (record only)
    python -m loadtests.auction_bids ... --mode redis          # option (b): Redis function
    python -m loadtests.auction_bids --procs 1 --auctions 40 --bidders 400 --rate 2000 \
        --pool-max 8      # more hot auctions than connections: writers take turns

Modes:
- `pg` (shipped): PostgreSQL row lock + group commit (auctions/sequencer.py).
- `pg-nodurable`: the same, but each batch is acknowledged before its COMMIT (cost of
  durability; never used by the product).
- `redis`: option (b), sequencing in a Redis function holding the hot state
  (loadtests/auction_redis.py), then the same per-process group commit of the accepted bids
  into PostgreSQL before acknowledging.

`--rate` is attempts/s per process (open loop, each bidder at rate/bidders); 0 = closed loop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import statistics
import time
import uuid
from typing import Any

import asyncpg

from auctions.errors import BidRejected
from auctions.metrics import AuctionMetrics
from auctions.model import BidKind
from auctions.runtime import writer_budget
from auctions.service import AuctionService, AuctionSettings, NewAuction
from auctions.twins import MemoryFunds, MemoryOrders, MemoryPublisher, MemoryVariants
from core.auth import Principal, Role
from core.db import create_pool, migrate_dsn
from core.errors import AppError
from core.metrics import Metrics
from core.ratelimit import RateLimiter
from core.redis_client import create_redis


class RichFunds(MemoryFunds):
    async def available(self, conn: Any, user_id: uuid.UUID, currency: str) -> int:
        return 10**12


async def setup(dsn: str, schema: str, bidders: int,
                auctions: int = 1) -> tuple[list[str], list[str]]:
    await migrate_dsn(dsn, schema=schema)
    pool = await create_pool(dsn, schema=schema, min_size=1, max_size=2)
    try:
        seller = await pool.fetchval(
            """INSERT INTO users (email, email_normalized, password_hash, display_name, role)
               VALUES ('s@bench', 's@bench', 'x', 'Seller', 'seller') RETURNING id""")
        ids = await pool.fetch(
            """INSERT INTO users (email, email_normalized, password_hash, display_name, role)
               SELECT 'b' || g || '@bench', 'b' || g || '@bench', 'x', 'Bidder ' || g, 'buyer'
               FROM generate_series(1, $1) g RETURNING id""", bidders)
        variants = MemoryVariants()
        variant = variants.add(seller, units=auctions)  # each auction holds one
        svc = AuctionService(pool, publisher=MemoryPublisher(), funds=RichFunds(),
                             orders=MemoryOrders(), variants=variants, limiter=None)
        made = []
        for _ in range(auctions):
            row = await svc.create(Principal(seller, Role.SELLER, "b", 2**31), NewAuction(
                variant_id=variant, start_price=100, duration_s=3_600, soft_close_s=10))
            made.append(str(row.auction.rules.auction_id))
        return made, [str(r["id"]) for r in ids]
    finally:
        await pool.close()


async def drive(args: argparse.Namespace, auctions: list[str],
                bidders: list[str]) -> dict[str, Any]:
    pool = await create_pool(args.dsn, schema=args.schema, min_size=2, max_size=args.pool_max)
    redis = create_redis(args.redis, max_connections=len(bidders) + 16)
    limiter = RateLimiter(redis, prefix=args.prefix, metrics=Metrics())
    publisher = MemoryPublisher()
    svc = AuctionService(
        pool, publisher=publisher, funds=RichFunds(), orders=MemoryOrders(),
        variants=MemoryVariants(), limiter=None if args.no_limiter else limiter,
        settings=AuctionSettings(bid_rate=100_000, max_batch=args.max_batch, max_queue=50_000,
                                 writer_connections=writer_budget(args.writer_connections,
                                                                  args.pool_max)),
        durable=args.mode != "pg-nodurable",
    )
    place = svc.place_bid
    redis_seq = None
    if args.mode == "redis":
        from loadtests.auction_redis import RedisSequencedService

        redis_seq = RedisSequencedService(svc, redis, prefix=args.prefix)
        await redis_seq.load(uuid.UUID(auctions[0]))
        place = redis_seq.place_bid  # type: ignore[assignment]
    latencies: list[float] = []
    by_auction: dict[str, list[float]] = {a: [] for a in auctions}
    outcomes: dict[str, int] = {}
    seen_prices = {a: [100] for a in auctions}
    deadline = time.monotonic() + args.seconds
    interval = len(bidders) / args.rate if args.rate else 0.0

    async def bidder(user: str, auction: str) -> None:
        principal = Principal(uuid.UUID(user), Role.BUYER, "b", 2**31)
        aid, seen_price, mine = uuid.UUID(auction), seen_prices[auction], by_auction[auction]
        if interval:
            await asyncio.sleep(random.random() * interval)
        next_at = time.monotonic()
        while time.monotonic() < deadline:
            price = seen_price[0]
            if random.random() < 0.7:  # one tap, accepting up to ~10% above what we saw
                kind, amount = BidKind.NEXT, price + price // 10 + 100
            else:  # a maximum around the price (some too low)
                kind, amount = BidKind.MAX, price + random.randint(-5, 30) * 500
            started = time.perf_counter()
            try:
                ack = await place(principal, aid, amount=max(1, amount), bid_id=uuid.uuid4(),
                                  kind=kind)
                seen_price[0] = max(seen_price[0], ack.price)
                code = "accepted"
            except BidRejected as exc:
                code = exc.code
                if exc.code == "bid_too_low":
                    seen_price[0] = max(seen_price[0], getattr(exc, "min_bid", 0) - 100)
            except AppError as exc:
                code = exc.code
            latencies.append(time.perf_counter() - started)
            mine.append(latencies[-1])
            outcomes[code] = outcomes.get(code, 0) + 1
            if interval:
                next_at += interval
                delay = next_at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)

    started = time.monotonic()
    # bidders spread round-robin over the auctions
    await asyncio.gather(*(bidder(b, auctions[i % len(auctions)])
                           for i, b in enumerate(bidders)))
    elapsed = time.monotonic() - started
    metrics = svc.sequencer.metrics if redis_seq is None else redis_seq.metrics
    await svc.aclose()
    await pool.close()
    await redis.aclose()
    return {"latencies": latencies, "outcomes": outcomes, "elapsed": elapsed,
            "by_auction": by_auction, **batch_figures(metrics)}


def batch_figures(metrics: AuctionMetrics) -> dict[str, float]:
    """Batches committed, and the largest batch's size as the upper bound of the first bucket
    of `souk_auction_batch_size` that holds every batch."""
    buckets = [(float(s.labels["le"]), s.value) for family in metrics.batch_size.collect()
               for s in family.samples if s.name.endswith("_bucket")]
    batches = buckets[-1][1] if buckets else 0.0
    largest = next((le for le, n in buckets if n >= batches), 0.0) if batches else 0.0
    return {"batches": batches, "largest_batch_le": largest}


def _child(args: argparse.Namespace, auctions: list[str], bidders: list[str],
           out: multiprocessing.Queue[Any]) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    out.put(asyncio.run(drive(args, auctions, bidders)))


async def verify(dsn: str, schema: str, auctions: list[str]) -> dict[str, Any]:
    """Every auction's accepted seqs gapless; rows written, summed over the auctions."""
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    accepted = attempts = 0
    gapless = True
    try:
        for auction in auctions:
            seqs = [r["seq"] for r in await conn.fetch(
                "SELECT seq FROM auction_bids WHERE auction_id = $1 ORDER BY seq",
                uuid.UUID(auction))]
            attempts += await conn.fetchval(
                "SELECT count(*) FROM auction_bid_attempts WHERE auction_id = $1",
                uuid.UUID(auction))
            accepted += len(seqs)
            gapless = gapless and seqs == list(range(1, len(seqs) + 1))
        return {"accepted_rows": accepted, "gapless": gapless, "attempt_rows": attempts}
    finally:
        await conn.close()


async def drop(dsn: str, redis_url: str, schema: str, prefix: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()
    redis = create_redis(redis_url)
    keys = [k async for k in redis.scan_iter(match=f"{prefix}*", count=1000)]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


def per_auction(results: list[dict[str, Any]]) -> dict[str, Any]:
    """With several auctions: how unevenly they were served (attempts and ack p99 of the
    least and the best served auction)."""
    merged: dict[str, list[float]] = {}
    for r in results:
        for a, lat in r["by_auction"].items():
            merged.setdefault(a, []).extend(lat)
    if len(merged) < 2:
        return {}
    counts = sorted(len(v) for v in merged.values())
    p99s = sorted(pct(v, 0.99) for v in merged.values() if v)
    return {"attempts_per_auction_min_max": [counts[0], counts[-1]],
            "ack_p99_ms_per_auction_min_max": [round(p99s[0], 1), round(p99s[-1], 1)]}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dsn", default=os.environ.get("DATABASE_URL",
                                                   "postgresql://postgres@127.0.0.1:5432/postgres"))
    p.add_argument("--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    p.add_argument("--procs", type=int, default=2, choices=range(1, 9))
    p.add_argument("--bidders", type=int, default=250, help="bidders per process (max 2000)")
    p.add_argument("--rate", type=float, default=500.0, help="attempts/s per process; 0 = max")
    p.add_argument("--seconds", type=float, default=15.0, help="duration (max 120)")
    p.add_argument("--max-batch", type=int, default=500)
    p.add_argument("--no-limiter", action="store_true", help="skip the Redis rate limiter")
    p.add_argument("--mode", choices=("pg", "pg-nodurable", "redis"), default="pg")
    p.add_argument("--auctions", type=int, default=1,
                   help="hot auctions, bidders spread over them (max 200)")
    p.add_argument("--pool-max", type=int, default=8, help="each process's pool size")
    p.add_argument("--writer-connections", type=int, default=0,
                   help="AUCTION_WRITER_CONNECTIONS (0: half the pool)")
    args = p.parse_args()
    if not 1 <= args.auctions <= 200 or (args.mode == "redis" and args.auctions > 1):
        raise SystemExit("--auctions: 1 to 200 (1 with --mode redis)")
    if not 0 <= args.writer_connections < args.pool_max:
        raise SystemExit("--writer-connections must be below --pool-max")
    args.bidders = min(args.bidders, 2_000)
    args.seconds = min(args.seconds, 120.0)
    tag = uuid.uuid4().hex[:10]
    args.schema, args.prefix = f"bench_{tag}", f"bench_{tag}:"
    auctions, users = asyncio.run(setup(args.dsn, args.schema, args.bidders * args.procs,
                                        args.auctions))
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue[Any] = ctx.Queue()
    procs = [ctx.Process(target=_child, args=(args, auctions,
                                              users[i * args.bidders:(i + 1) * args.bidders],
                                              out)) for i in range(args.procs)]
    try:
        for proc in procs:
            proc.start()
        results = [out.get(timeout=args.seconds + 120) for _ in procs]
        for proc in procs:
            proc.join(30)
        checked = asyncio.run(verify(args.dsn, args.schema, auctions))
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.kill()
        asyncio.run(drop(args.dsn, args.redis, args.schema, args.prefix))
    lat = [x for r in results for x in r["latencies"]]
    outcomes: dict[str, int] = {}
    for r in results:
        for k, v in r["outcomes"].items():
            outcomes[k] = outcomes.get(k, 0) + v
    elapsed = max(r["elapsed"] for r in results)
    report = {
        "mode": args.mode, "procs": args.procs, "bidders_total": args.bidders * args.procs,
        "target_rate_total": args.rate * args.procs, "seconds": round(elapsed, 1),
        "attempts": len(lat), "attempts_per_s": round(len(lat) / elapsed),
        "accepted_per_s": round(outcomes.get("accepted", 0) / elapsed),
        "ack_ms": {"p50": round(pct(lat, 0.50), 2), "p95": round(pct(lat, 0.95), 2),
                   "p99": round(pct(lat, 0.99), 2), "max": round(max(lat) * 1000, 2),
                   "mean": round(statistics.fmean(lat) * 1000, 2)},
        "outcomes": outcomes,
        "auctions": args.auctions,
        **per_auction(results),
        "batches": sum(r["batches"] for r in results),
        "largest_batch_le": max(r["largest_batch_le"] for r in results),
        **checked,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
