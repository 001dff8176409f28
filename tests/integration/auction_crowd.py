"""A crowd of websocket bidders and watchers on one auction over real server processes, and
the checks that compare what they were told with PostgreSQL's record (race and fault tests).

Buyers are inserted directly and get access tokens minted with the deployment's own key ring
(no password hashing, no HTTP sign-up: 200 accounts in well under a second); wallets are funded
with the ledger's `topup` on the test schema."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from api.ledger import service as ledger
from auctions.wire import events_of
from core.config import Settings
from testkit.people import funded_buyers
from tests.realtime.wsclient import WsClient

FUNDS = 100_000_000
PASSWORD = "correct horse battery staple"
# Refusals after which the same bid may be tried again (the answer was not a decision).
TEMPORARY = {"rate_limited", "bids_overloaded", "unavailable", "internal_error",
             "service_unavailable", "timeout"}
NETWORK_ERRORS = (ConnectionClosed, InvalidHandshake, OSError, asyncio.TimeoutError)


@dataclass
class Ack:
    seq: int
    amount: int
    price: int
    bidder: str
    bid_id: str


@dataclass
class Crowd:
    """Shared state of one run: what every client was told."""

    auction_id: str
    urls: list[str]  # ws:// base urls of the live processes, in preference order
    acks: list[Ack] = field(default_factory=list)
    refusals: dict[str, int] = field(default_factory=dict)
    reconnects: int = 0
    watcher_reconnects: int = 0
    price: int = 0
    over: bool = False  # some bidder was told the auction is not open any more
    clients: int = 0  # connected and subscribed clients needed before the start
    ready: int = 0
    start: asyncio.Event = field(default_factory=asyncio.Event)

    def arrived(self) -> None:
        """One more client is connected (and subscribed when watching); the bidding starts
        when all are."""
        self.ready += 1
        if self.ready >= self.clients:
            self.start.set()

    @property
    def channel(self) -> str:
        return f"auction:{self.auction_id}"


async def all_arrived(crowd: Crowd, clients: Sequence[asyncio.Task[Any]],
                      timeout_s: float = 60.0) -> None:
    """Wait until every client has arrived (connected, subscribed). A client that failed first
    (a refused subscribe, a handshake that never completed) fails the run at once with its own
    error, instead of leaving the others waiting for the start until the test's timeout."""
    start = asyncio.ensure_future(crowd.start.wait())
    pending: set[asyncio.Future[Any]] = {start, *clients}
    try:
        async with asyncio.timeout(timeout_s):
            while not start.done():
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task is not start and task.exception() is not None:
                        raise AssertionError("a client failed before the start") \
                            from task.exception()
    finally:
        start.cancel()


async def buyers(pool: asyncpg.Pool, settings: Settings, n: int) -> list[tuple[str, str]]:
    """`n` funded buyers: (user id, access token)."""
    return await funded_buyers(pool, settings, n, funds=FUNDS)


async def open_auction(http: httpx.AsyncClient, base: str, *, duration_s: int,
                       soft_close_s: int) -> str:
    email = f"seller-{uuid.uuid4().hex[:8]}@example.com"
    r = await http.post(base + "/v1/auth/register", json={
        "email": email, "password": PASSWORD, "display_name": "Crowd seller", "role": "seller"})
    assert r.status_code == 201, r.text
    headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
    r = await http.post(base + "/v1/products", headers=headers, json={
        "title": "Signed first edition", "variants": [{"sku": "BOOK-1", "price": 9_000,
                                                         "stock": 1}]})
    assert r.status_code == 201, r.text
    r = await http.post(base + "/v1/auctions", headers=headers, json={
        "variant_id": r.json()["variants"][0]["id"], "start_price": 1_000,
        "duration_s": duration_s, "soft_close_s": soft_close_s})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _connect(crowd: Crowd, first: int, token: str | None) -> WsClient:
    """Connect to the preferred process, else any other live one (a client whose server died
    reconnects elsewhere)."""
    for attempt in range(40):
        url = crowd.urls[(first + attempt) % len(crowd.urls)]
        try:
            return await WsClient.open(url, token=token, open_timeout=3)
        except NETWORK_ERRORS:
            await asyncio.sleep(0.1)
    raise AssertionError("no server process accepts connections")


async def bidder(crowd: Crowd, i: int, user: str, token: str, *, seconds: float,
                 watch: bool) -> list[dict[str, Any]]:
    """Connect, wait for the start, bid for `seconds` or until the auction is over; returns
    the auction publications
    this client saw (when `watch`). A bid whose answer was lost is sent again with the same
    bid_id (idempotent: a bid that was committed answers with its first seq)."""
    rng = random.Random(i)
    ws: WsClient | None = None
    seen: list[dict[str, Any]] = []
    pending: dict[str, Any] | None = None
    ws = await _connect(crowd, i, token)
    if watch:
        assert "result" in await ws.call("subscribe", channel=crowd.channel)
    crowd.arrived()
    await crowd.start.wait()
    until = time.monotonic() + seconds
    await asyncio.sleep(rng.uniform(0, 0.5))
    while time.monotonic() < until and not crowd.over:
        if ws is None:
            ws = await _connect(crowd, i, token)
            if watch:
                assert "result" in await ws.call("subscribe", channel=crowd.channel)
        pending = pending or _new_bid(rng, crowd.price)
        try:
            reply = await ws.call("bid", auction_id=crowd.auction_id, **pending)
        except NETWORK_ERRORS:
            seen.extend(ws.inbox)
            ws = None
            crowd.reconnects += 1
            continue
        pending = _answered(crowd, user, pending, reply)
        await asyncio.sleep(rng.uniform(0.1, 0.7))
    if ws is not None:
        if watch:
            seen.extend(await _until_closed(ws))
        await ws.close()
    return seen


def _new_bid(rng: random.Random, price: int) -> dict[str, Any]:
    """70% one-tap `next` (up to 10% above the last price seen), 30% maxima around it."""
    if rng.random() < 0.7:
        bid = {"kind": "next", "amount": price * 11 // 10 + 5_000}
    else:
        bid = {"kind": "max", "amount": max(1_000, price + rng.randint(-2, 30) * 100)}
    return bid | {"bid_id": str(uuid.uuid4())}


def _answered(crowd: Crowd, user: str, bid: dict[str, Any],
              reply: dict[str, Any]) -> dict[str, Any] | None:
    """Record the answer; the bid to send again (same bid_id), if any."""
    if "result" in reply:
        res = reply["result"]
        crowd.acks.append(Ack(res["seq"], res["amount"], res["price"], user, bid["bid_id"]))
        crowd.price = max(crowd.price, res["price"])
        return None
    code = reply["error"]["code"]
    crowd.refusals[code] = crowd.refusals.get(code, 0) + 1
    if code == "auction_not_open":
        crowd.over = True
    return bid if code in TEMPORARY else None


async def _until_closed(ws: WsClient, wait_s: float = 25.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + wait_s
    try:
        while not any(e.get("type") == "closed" for m in ws.inbox
                      if isinstance(m.get("data"), dict) for e in events_of(m["data"])):
            await ws._read_one(max(0.1, deadline - time.monotonic()))
    except NETWORK_ERRORS:
        pass
    return ws.inbox


async def watcher(crowd: Crowd, url: str, *, binary: bool,
                  reconnect: bool = False) -> list[dict[str, Any]]:
    """A watcher on one process; returns what it saw until `closed`. When the server drops
    the connection it stops there, or with `reconnect` connects again and subscribes anew
    (what was published meanwhile is not replayed: a restarted Redis has no history)."""
    ws = await WsClient.open(url, binary=binary)
    assert "result" in await ws.call("subscribe", channel=crowd.channel)
    crowd.arrived()
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60
    while True:
        seen.extend(await _until_closed(ws))
        await ws.close()
        if closed_events(seen, crowd.channel) or not reconnect:
            return seen
        again = await _resubscribe(crowd, url, binary, deadline)
        if again is None:
            return seen
        ws = again


async def _resubscribe(crowd: Crowd, url: str, binary: bool,
                       deadline: float) -> WsClient | None:
    while time.monotonic() < deadline:
        try:
            ws = await WsClient.open(url, binary=binary, open_timeout=3)
            if "result" in await ws.call("subscribe", channel=crowd.channel):
                crowd.watcher_reconnects += 1
                return ws
            await ws.close()
        except NETWORK_ERRORS:
            pass
        await asyncio.sleep(0.2)
    return None


def bid_events(seen: list[dict[str, Any]], channel: str) -> list[tuple[int, int]]:
    return [(e["seq"], e["price"]) for e in auction_events(seen, channel)
            if e.get("type") == "bid"]


def closed_events(seen: list[dict[str, Any]], channel: str) -> list[dict[str, Any]]:
    return [e for e in auction_events(seen, channel) if e.get("type") == "closed"]


def auction_events(seen: list[dict[str, Any]], channel: str) -> list[dict[str, Any]]:
    """Every event the publications on `channel` carried, in order (batches flattened)."""
    return [e for m in seen if m.get("channel") == channel for e in events_of(m["data"])]


async def wait_settled(pool: asyncpg.Pool, auction_id: str, timeout_s: float = 40) -> Any:
    """The auction row once it is closed and its winner settled."""
    deadline = time.monotonic() + timeout_s
    while True:
        row = await pool.fetchrow("SELECT * FROM auctions WHERE id = $1", uuid.UUID(auction_id))
        if row["state"] == "closed" and (row["outcome"] == "no_sale"
                                         or row["payment_state"] is not None):
            return row
        assert time.monotonic() < deadline, dict(row)
        await asyncio.sleep(0.2)


async def check_record(pool: asyncpg.Pool, crowd: Crowd, users: list[str],
                       *, dead: Callable[[], bool] = lambda: False) -> list[tuple[int, int]]:
    """Every acknowledged bid is in PostgreSQL with its seq and amount; the seqs are gapless;
    one winner (the earliest highest maximum), one order, paid from the wallet; nobody else
    holds anything; the ledger balances. Returns PostgreSQL's (seq, price) list."""
    auction = await wait_settled(pool, crowd.auction_id)
    rows = await pool.fetch(
        "SELECT seq, bidder_id, bid_id, amount, price_after, leader_after FROM auction_bids "
        "WHERE auction_id = $1 ORDER BY seq", uuid.UUID(crowd.auction_id))
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))  # gapless
    assert auction["seq"] == len(rows) and auction["bid_count"] == len(rows)
    by_seq = {r["seq"]: r for r in rows}
    for ack in crowd.acks:  # no acknowledged bid lost, none renumbered
        row = by_seq.get(ack.seq)
        assert row is not None, ack
        assert (str(row["bidder_id"]), str(row["bid_id"]), row["amount"]) == (
            ack.bidder, ack.bid_id, ack.amount), (ack, dict(row))
    assert len({a.seq for a in crowd.acks}) == len({(a.bidder, a.bid_id) for a in crowd.acks})

    assert auction["outcome"] == "sold" and rows
    top = max(r["amount"] for r in rows)
    first_top = next(r for r in rows if r["amount"] == top)
    assert auction["leader_id"] == first_top["bidder_id"] == rows[-1]["leader_after"]
    assert auction["price"] == rows[-1]["price_after"] <= top
    winner = auction["leader_id"]
    orders = await pool.fetch("SELECT id, buyer_id, state, total FROM orders "
                              "WHERE buyer_id = ANY($1::uuid[])", users)
    assert len(orders) == 1, orders
    assert orders[0]["id"] == auction["order_id"] and orders[0]["buyer_id"] == winner
    assert orders[0]["state"] == "paid" and orders[0]["total"] == auction["price"]
    assert auction["payment_state"] == "captured"
    for user in users:
        view = await ledger.wallet(pool, uuid.UUID(user), "USD")
        assert view.held == 0, user
        spent = auction["price"] if uuid.UUID(user) == winner else 0
        assert view.available == FUNDS - spent, user
    from api.ledger import store as ledger_store

    report = await ledger_store.audit(pool)
    assert report["ok"], report
    return [(r["seq"], r["price_after"]) for r in rows]
