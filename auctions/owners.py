"""One owner process per live auction: bids received elsewhere are forwarded to it over Redis.

Why: every process can sequence any auction (the PostgreSQL row lock and the auction's advisory
lock keep seq gapless and the order identical — see sequencer.py), but when two processes take
turns on one hot auction, each batch waits for the other's whole batch (its lock, inserts,
commit and publication), and the round trips of both add up on every bid. Routing an auction's
bids to one process turns that ping-pong into one writer committing bigger batches back to back;
the other processes only forward.

How:
- Each process has a node id and an inbox, the Redis pub/sub channel `<prefix>auction-node:<id>`.
- The owner of an auction is named by the key `<prefix>auction-owner:<auction>` (a lease,
  `lease_ms` long, renewed by the owner while it keeps receiving bids). The first process that
  needs an owner and finds none takes the lease itself.
- A bid for an auction another node owns is PUBLISHed to that node's inbox (after the local
  rate-limit and funds checks); the owner puts it through its sequencer and PUBLISHes the answer
  (the ack, or the error's code and texts) to the sender's inbox.
- An owner that is gone is noticed at once: PUBLISH to its inbox reaches nobody (a killed
  process's Redis connection, and with it its subscription, is gone). The sender then takes the
  lease over (only if it still names the dead node) and sequences the bid itself. An owner that
  does not answer within `forward_timeout_s` gets the bidder a `service_unavailable` (temporary):
  the client retries with the same `bid_id`, which is idempotent wherever it lands.

Ownership is an optimisation, never a correctness condition: two processes that both believe
they own an auction (a lease that lapsed under a slow owner) still sequence correctly through the
database. If Redis is unreachable, every process sequences its own bids (the behaviour without
routing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import redis.asyncio as aioredis

from auctions.batch import BidAck
from auctions.checks import BidRequest, settle_one
from auctions.model import BidKind
from auctions.sequencer import Sequencer
from core.coalesce import Coalescer
from core.errors import AppError, ServiceUnavailable
from core.redis_client import REDIS_ERRORS
from core.tasks import stop

log = logging.getLogger("souk.auctions.owners")

# Take the lease when free, renew it when ours; answer the owner either way.
_CLAIM = """
local owner = redis.call('GET', KEYS[1])
if not owner or owner == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ARGV[1]
end
return owner
"""

# Take the lease from a node found dead, unless someone already did.
_STEAL = """
local owner = redis.call('GET', KEYS[1])
if not owner or owner == ARGV[2] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
  return ARGV[1]
end
return owner
"""

OnForward = Callable[[str], None]


class OwnerGone(Exception):
    """The owner's inbox has no subscriber: the process is gone."""


def _text(value: Any) -> str:
    """A node id as Redis returned it (bytes without decode_responses)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def _error_classes() -> dict[str, type[AppError]]:
    out: dict[str, type[AppError]] = {}
    todo: list[type[AppError]] = [AppError]
    while todo:
        cls = todo.pop()
        out.setdefault(cls.code, cls)
        todo.extend(cls.__subclasses__())
    return out


def encode_error(exc: BaseException) -> dict[str, Any]:
    if not isinstance(exc, AppError):
        exc = ServiceUnavailable()
    return {"code": exc.code, "detail": exc._detail, "params": dict(exc.params),
            "extra": dict(exc.extra), "headers": dict(exc.headers)}


def decode_error(data: dict[str, Any]) -> AppError:
    """The same AppError class, texts and extras on this side (no constructor is run: some
    take their own arguments)."""
    cls = _error_classes().get(data["code"], ServiceUnavailable)
    exc = cls.__new__(cls)
    exc.params = data.get("params") or {}
    exc.extra = data.get("extra") or {}
    exc.headers = data.get("headers") or {}
    exc._detail = data.get("detail")
    Exception.__init__(exc, exc.message)
    return exc


class BidRouter:
    """`await submit(auction_id, request)` → BidAck, sequenced by the auction's owner."""

    def __init__(
        self,
        redis: aioredis.Redis,
        sequencer: Sequencer,
        *,
        prefix: str,
        lease_ms: int = 5_000,
        forward_timeout_s: float = 3.0,
        on_forward: OnForward | None = None,
    ) -> None:
        self.node = uuid.uuid4().hex
        self._redis = redis
        self._sequencer = sequencer
        self._prefix = prefix
        self._lease_ms = lease_ms
        self._forward_timeout_s = forward_timeout_s
        self._on_forward = on_forward or (lambda _outcome: None)
        self._claim = redis.register_script(_CLAIM)
        self._steal = redis.register_script(_STEAL)
        # auction -> (owner node, until when the answer is trusted: monotonic seconds)
        self._owners: dict[uuid.UUID, tuple[str, float]] = {}
        self._owned: dict[uuid.UUID, float] = {}  # auctions we own -> last bid (monotonic)
        self._waiting: dict[str, asyncio.Future[BidAck]] = {}
        self._lookups: dict[uuid.UUID, asyncio.Future[str]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reader: asyncio.Task[None] | None = None
        self._renewer: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self._outbox: Coalescer[tuple[str, bytes], int] = Coalescer(self._publish_many)

    # -- names --------------------------------------------------------------------------

    def _inbox(self, node: str) -> str:
        return f"{self._prefix}auction-node:{node}"

    def _lease(self, auction_id: uuid.UUID) -> str:
        return f"{self._prefix}auction-owner:{auction_id}"

    # -- life ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._reader = asyncio.create_task(self._read(), name="auction-router-inbox")
        self._renewer = asyncio.create_task(self._renew(), name="auction-router-leases")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await self._listening.wait()

    async def aclose(self) -> None:
        await stop(*(t for t in (self._reader, self._renewer, *self._tasks) if t is not None))
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(ServiceUnavailable())
        # Hand the auctions over now rather than when the leases lapse.
        with contextlib.suppress(*REDIS_ERRORS):
            for auction_id in list(self._owned):
                await self._redis.eval(
                    "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end",
                    1, self._lease(auction_id), self.node)

    # -- the bid path -------------------------------------------------------------------

    async def submit(self, auction_id: uuid.UUID, request: BidRequest) -> BidAck:
        owner = await self._owner(auction_id)
        if owner == self.node:
            self._owned[auction_id] = time.monotonic()
            return await self._sequencer.submit(auction_id, request)
        await settle_one(request)  # they ran here: the owner gets only their outcome
        if request.refusal is not None:
            self.record_refusal(auction_id, request)
            raise request.refusal
        try:
            ack = await self._forward(owner, auction_id, request)
        except OwnerGone:
            await self._take_over(auction_id, owner)
            self._on_forward("owner_gone")
            return await self._sequencer.submit(auction_id, request)
        self._on_forward("forwarded")
        return ack

    def record_refusal(self, auction_id: uuid.UUID, request: BidRequest) -> None:
        """Audit a refused bid on the owner (best effort, no answer)."""
        cached = self._owners.get(auction_id)
        if cached is None or cached[0] == self.node or cached[1] < time.monotonic():
            self._sequencer.record_refusal(auction_id, request)
            return
        self._spawn(self._publish(cached[0], self._request(auction_id, request, None)))

    async def _owner(self, auction_id: uuid.UUID) -> str:
        """The auction's owner node (claiming it when nobody owns it). One Redis call per
        auction at a time: a burst of bids shares it."""
        cached = self._owners.get(auction_id)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        pending = self._lookups.get(auction_id)
        if pending is None:
            pending = asyncio.ensure_future(self._look_up(auction_id))
            self._lookups[auction_id] = pending
            pending.add_done_callback(lambda _: self._lookups.pop(auction_id, None))
        return await asyncio.shield(pending)

    async def _look_up(self, auction_id: uuid.UUID) -> str:
        now = time.monotonic()
        try:
            owner = await self._claim(keys=[self._lease(auction_id)],
                                      args=[self.node, self._lease_ms])
        except REDIS_ERRORS as exc:  # no routing without Redis: sequence here
            log.warning("auction owner lookup failed", extra={"error": repr(exc)})
            return self.node
        name = _text(owner)
        # trust it for a third of the lease: the owner renews well before it lapses
        self._owners[auction_id] = (name, now + self._lease_ms / 3000)
        return name

    async def _take_over(self, auction_id: uuid.UUID, dead: str) -> None:
        with contextlib.suppress(*REDIS_ERRORS):
            owner = await self._steal(keys=[self._lease(auction_id)],
                                      args=[self.node, dead, self._lease_ms])
            name = _text(owner)
            self._owners[auction_id] = (name, time.monotonic() + self._lease_ms / 3000)
            if name == self.node:
                log.info("took over an auction from a node that is gone",
                         extra={"auction_id": str(auction_id)})
                return
        self._owners[auction_id] = (self.node, time.monotonic() + 1.0)

    def _request(self, auction_id: uuid.UUID, request: BidRequest, rid: str | None) -> bytes:
        return orjson.dumps({
            "t": "bid", "rid": rid, "from": self.node, "a": str(auction_id),
            "b": str(request.bidder), "m": request.amount, "k": request.kind.value,
            "i": str(request.bid_id), "r": request.refused, "n": request.needs,
            "c": request.currency,
        })

    async def _forward(self, owner: str, auction_id: uuid.UUID, request: BidRequest) -> BidAck:
        rid = uuid.uuid4().hex
        fut: asyncio.Future[BidAck] = asyncio.get_running_loop().create_future()
        self._waiting[rid] = fut
        try:
            if await self._publish(owner, self._request(auction_id, request, rid)) == 0:
                raise OwnerGone()
            async with asyncio.timeout(self._forward_timeout_s):
                return await fut
        except TimeoutError:
            self._on_forward("timeout")
            self._owners.pop(auction_id, None)
            raise ServiceUnavailable("The auction's owner did not answer in time.") from None
        except REDIS_ERRORS as exc:
            log.warning("bid forward failed", extra={"error": repr(exc)})
            raise ServiceUnavailable() from None
        finally:
            self._waiting.pop(rid, None)
            # a refusal raised from `fut` has this frame in its traceback: unhook the future
            # (it holds the refusal) so refcounting frees both, not the collector
            del fut

    async def _publish(self, node: str, message: bytes) -> int:
        """PUBLISH to a node's inbox; returns how many subscribers got it (0: node gone).
        The messages of one loop turn go out in one pipelined round trip."""
        return await self._outbox.call((self._inbox(node), message))

    async def _publish_many(self, items: list[tuple[str, bytes]]) -> list[int]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for channel, message in items:
                pipe.publish(channel, message)
            out: list[int] = await pipe.execute()
        return out

    # -- the owner's side ---------------------------------------------------------------

    def _spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("auction router task failed", extra={"error": repr(task.exception())})

    async def _read(self) -> None:
        """The inbox reader: never dies; reconnects with backoff."""
        backoff = 0.1
        while True:
            pubsub: Any = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._inbox(self.node))
                self._listening.set()
                backoff = 0.1
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self._on_message(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("auction router inbox lost", extra={"error": repr(exc)})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    def _on_message(self, raw: bytes) -> None:
        try:
            msg = orjson.loads(raw)
            if msg["t"] == "bid":
                self._serve(msg)
            elif msg["t"] == "ack":
                fut = self._waiting.get(msg["rid"])
                if fut is not None and not fut.done():
                    if "err" in msg:
                        fut.set_exception(decode_error(msg["err"]))
                    else:
                        fut.set_result(BidAck(**msg["ok"]))
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("bad auction router message", extra={"error": repr(exc)})

    def _serve(self, msg: dict[str, Any]) -> None:
        auction_id = uuid.UUID(msg["a"])
        request = BidRequest(uuid.UUID(msg["b"]), int(msg["m"]), BidKind(msg["k"]),
                             uuid.UUID(msg["i"]), refused=msg.get("r"),
                             needs=int(msg.get("n", 0)), currency=str(msg.get("c", "")))
        self._owned[auction_id] = time.monotonic()
        if request.refused is not None or msg.get("rid") is None:
            self._sequencer.record_refusal(auction_id, request)
            return
        self._spawn(self._answer(msg["from"], msg["rid"], auction_id, request))

    async def _answer(self, to: str, rid: str, auction_id: uuid.UUID,
                      request: BidRequest) -> None:
        reply: dict[str, Any] = {"t": "ack", "rid": rid}
        try:
            ack = await self._sequencer.submit(auction_id, request)
        except Exception as exc:
            reply["err"] = encode_error(exc)
        else:
            reply["ok"] = {"seq": ack.seq, "amount": ack.amount, "price": ack.price,
                           "ends_at": ack.ends_at, "leading": ack.leading,
                           "replayed": ack.replayed}
        await self._publish(to, orjson.dumps(reply))

    async def _renew(self) -> None:
        """Keep the leases of auctions this node is sequencing; let idle ones lapse."""
        while True:
            await asyncio.sleep(self._lease_ms / 3000)
            now = time.monotonic()
            for auction_id, last in list(self._owned.items()):
                if now - last > 30:
                    del self._owned[auction_id]
                    continue
                with contextlib.suppress(*REDIS_ERRORS):
                    owner = await self._claim(keys=[self._lease(auction_id)],
                                              args=[self.node, self._lease_ms])
                    name = _text(owner)
                    self._owners[auction_id] = (name, now + self._lease_ms / 3000)
                    if name != self.node:
                        del self._owned[auction_id]
