"""Option (b), measured and not shipped: sequencing bids in a Redis function that holds the hot
auction state, then a per-process group commit of the accepted bids into PostgreSQL before the
acknowledgement (same durability rule as the shipped path).

The function implements the proxy rules of auctions/engine.py for the benchmark's bid mix
(MAX / EXACT / NEXT, default increment table, soft close, bid-id dedup, server `TIME`); reserve
and buy-it-now are left out. Why it was not chosen is in BENCHMARKS.md ("Auctions"): the same
PostgreSQL commit is still on every acknowledgement, and two processes committing Redis-ordered
bids in PostgreSQL can commit seq N+1 before seq N — a crash in between leaves a gap behind an
acknowledged bid unless acknowledgements are also ordered across processes.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from auctions import store, writes
from auctions.batch import Attempt
from auctions.errors import AuctionNotOpen, BidTooLow, InsufficientFunds, SellerCannotBid
from auctions.metrics import AuctionMetrics
from auctions.model import BidKind, BidRecord
from auctions.service import AuctionService
from core.auth import Principal

LIBRARY = r"""#!lua name=souk_auction_bench
local function inc(p)
  if p < 3000 then return 100 elseif p < 5000 then return 200 elseif p < 10000 then return 300
  elseif p < 30000 then return 500 elseif p < 100000 then return 1000
  elseif p < 200000 then return 2000 end
  return 5000
end
-- KEYS: state hash, dedup hash, stream. ARGV: bidder, bid_id, kind, amount
local function place_bid(keys, argv)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local dkey = argv[1] .. ':' .. argv[2]
  local prev = redis.call('HGET', keys[2], dkey)
  if prev then return {2, prev} end
  local st = redis.call('HMGET', keys[1], 'state', 'ends_at', 'price', 'leader', 'leader_max',
                        'seq', 'start', 'seller', 'soft', 'bids')
  if st[1] ~= 'open' then return {-1, 'auction_not_open'} end
  local ends = tonumber(st[2])
  if now >= ends then return {-1, 'auction_not_open'} end
  local bidder, kind, amount = argv[1], argv[3], tonumber(argv[4])
  if bidder == st[8] then return {-1, 'seller_cannot_bid'} end
  local price, leader, lmax = tonumber(st[3]), st[4] or '', tonumber(st[5])
  local minnext = price + inc(price)
  if leader == '' then minnext = tonumber(st[7]) end
  if kind == 'next' then
    if amount < minnext then return {-1, 'bid_too_low', minnext} end
    kind = 'exact'; amount = minnext
  end
  local newprice, newleader, newmax = price, leader, lmax
  if bidder == leader then
    if amount < minnext or amount <= lmax then return {-1, 'bid_too_low', minnext} end
    newmax = amount
  elseif amount < minnext then
    return {-1, 'bid_too_low', minnext}
  elseif leader == '' then
    newleader = bidder; newmax = amount
    if kind == 'exact' then newprice = amount else newprice = tonumber(st[7]) end
  elseif amount > lmax then
    newleader = bidder; newmax = amount
    if kind == 'exact' then newprice = amount else newprice = math.min(amount, lmax + inc(lmax)) end
  else
    newprice = math.min(lmax, amount + inc(amount))
  end
  if newprice < price then newprice = price end
  local soft = tonumber(st[9])
  if (newprice ~= price or newleader ~= leader) and soft > 0 and ends - now < soft then
    ends = now + soft
  end
  local seq = tonumber(st[6]) + 1
  redis.call('HSET', keys[1], 'price', newprice, 'leader', newleader, 'leader_max', newmax,
             'ends_at', ends, 'seq', seq, 'bids', tonumber(st[10]) + 1)
  redis.call('HSET', keys[2], dkey, seq)
  redis.call('XADD', keys[3], 'MAXLEN', '~', '100000', '*', 'seq', seq, 'bidder', bidder,
             'kind', kind, 'amount', amount, 'price', newprice, 'leader', newleader,
             'ends', ends, 'at', now)
  return {1, seq, newprice, newleader, ends, now, kind, amount}
end
redis.register_function('place_bid', place_bid)
"""

_ERRORS = {"auction_not_open": AuctionNotOpen, "seller_cannot_bid": SellerCannotBid}


@dataclass(frozen=True, slots=True)
class Ack:
    seq: int
    price: int
    ends_at: int


@dataclass
class _Req:
    principal: Principal
    amount: int
    kind: BidKind
    bid_id: uuid.UUID
    future: asyncio.Future[Ack]


class RedisSequencedService:
    def __init__(self, svc: AuctionService, redis: aioredis.Redis, *, prefix: str) -> None:
        self.svc = svc
        self.redis = redis
        self.prefix = prefix
        self.metrics = AuctionMetrics()  # batches and batch sizes, as the product counts them
        self._queue: asyncio.Queue[_Req] = asyncio.Queue(50_000)
        self._task: asyncio.Task[None] | None = None
        self._aid: uuid.UUID | None = None

    def _keys(self, aid: uuid.UUID) -> list[str]:
        tag = f"{self.prefix}{{auction:{aid}}}"
        return [f"{tag}:state", f"{tag}:bid_ids", f"{tag}:bids"]

    async def load(self, aid: uuid.UUID) -> None:
        """Load the function and (re)build the hot state from PostgreSQL — the recovery path
        after a Redis loss as well."""
        await self.redis.execute_command("FUNCTION", "LOAD", "REPLACE", LIBRARY)
        row = await store.get(self.svc.pool, aid)
        assert row is not None
        a = row.auction
        fields: dict[str, Any] = {
            "state": "open", "ends_at": a.ends_at, "price": a.price,
            "leader": str(a.leader) if a.leader else "", "leader_max": a.leader_max,
            "seq": a.seq, "start": a.rules.start_price, "seller": str(a.rules.seller_id),
            "soft": a.rules.soft_close_ms, "bids": a.bid_count,
        }
        flat = [str(x) for kv in fields.items() for x in kv]
        # Seed only if absent: another process may already be sequencing on it.
        await self.redis.eval(
            "if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('HSET', KEYS[1], unpack(ARGV))"
            " end return 1", 1, self._keys(aid)[0], *flat)
        self._aid = aid
        self._task = asyncio.create_task(self._run())

    async def place_bid(self, principal: Principal, aid: uuid.UUID, *, amount: int,
                        bid_id: uuid.UUID, kind: BidKind) -> Ack:
        rules = await self.svc._rules_of(aid)
        # the product's checks: the rate limit, then the wallet (here one query per bid)
        if self.svc._gate is not None:
            await self.svc._rate_check(principal.user_id)
        have = await self.svc.funds.available_many(None, [principal.user_id], rules.currency)
        if have.get(principal.user_id, 0) < amount:
            raise InsufficientFunds()
        fut: asyncio.Future[Ack] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Req(principal, amount, kind, bid_id, fut))
        return await fut

    async def _run(self) -> None:
        assert self._aid is not None
        aid, keys = self._aid, self._keys(self._aid)
        while True:
            batch = [await self._queue.get()]
            while len(batch) < 500 and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._batch(aid, keys, batch)
            except Exception as exc:  # answer everybody; keep running
                import traceback

                traceback.print_exc()
                for r in batch:
                    if not r.future.done():
                        r.future.set_exception(exc)

    async def _batch(self, aid: uuid.UUID, keys: list[str], batch: list[_Req]) -> None:
        if True:
            pipe = self.redis.pipeline(transaction=False)
            for r in batch:
                pipe.fcall("place_bid", 3, *keys, str(r.principal.user_id), str(r.bid_id),
                           r.kind.value, r.amount)
            results: list[Any] = await pipe.execute()
            rows: list[BidRecord] = []
            attempts: list[Attempt] = []
            answers: list[tuple[_Req, Ack | Exception]] = []
            for r, res in zip(batch, results, strict=True):
                code = int(res[0])
                if code == 1:
                    seq, price, leader, ends, now = (int(res[1]), int(res[2]),
                                                     uuid.UUID(res[3].decode()), int(res[4]),
                                                     int(res[5]))
                    rows.append(BidRecord(seq, r.principal.user_id, r.bid_id,
                                          BidKind(res[6].decode()), int(res[7]), now, price,
                                          leader, ends))
                    attempts.append(Attempt(r.principal.user_id, r.bid_id, r.kind.value,
                                                  r.amount, "accepted", seq, now))
                    answers.append((r, Ack(seq, price, ends)))
                else:
                    reason = res[1].decode() if code < 0 else "duplicate"
                    err: Exception = (BidTooLow(int(res[2])) if reason == "bid_too_low"
                                      else _ERRORS.get(reason, AuctionNotOpen)())
                    attempts.append(Attempt(r.principal.user_id, r.bid_id, r.kind.value,
                                                  r.amount, reason, None, 0))
                    answers.append((r, err))
            async with self.svc.pool.acquire() as conn, conn.transaction():
                # The Redis function holds the state; PostgreSQL gets the bids and attempts.
                await writes.write_batch(conn, aid, None, rows, attempts)
            self.metrics.batches.inc()
            self.metrics.batch_size.observe(len(batch))
            for r, answer in answers:
                if isinstance(answer, Exception):
                    r.future.set_exception(answer)
                else:
                    r.future.set_result(answer)
