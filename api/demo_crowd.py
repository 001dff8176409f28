"""The demo's crowd (`python -m api demo-crowd`, started by `scripts/demo`): a separate client
process that keeps the demo alive through the public API, as real users would.

- as the demo seller: puts the demo show live, keeps one auction open in it (a new one is
  listed as soon as the last closes) and puts sold-out demo variants back in stock;
- as a few simulated buyers (`bot<N>@demo.souk.dev`, at most `demo_rules.MAX_BOTS`): bids now
  and then (over the websocket `bid` op, within a budget, topping the wallet up with the demo
  payment provider) and chats in the show.

Bounded in people, pace and budget; it runs only where something starts it (never inside a
server) and only against a server holding the demo data set (it signs in as the demo seller
first and stops if it cannot).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any

from websockets.exceptions import WebSocketException

from api.demo import DEMO_PASSWORD, DEMO_SHOW
from api.demo_client import ApiError, Session, http
from api.demo_rules import (
    MAX_BOTS,
    apply_event,
    auction_variant,
    bot_email,
    bot_name,
    chat_line,
    money,
    next_bid,
    to_restock,
)
from auctions.wire import events_of

SELLER_EMAIL = "seller@demo.souk.dev"
TOKEN_REFRESH_S = 600  # access tokens live 15 minutes by default: sign in again well before
TOPUP = 50_000
SHOW_CHECK_S = 5.0  # the show's state is read this often (a new one goes live once it ends)
REFRESH_S = 30.0  # the followed auction's view is read again this often (a safety net)
LIVE = ("open", "scheduled")


def say(message: str) -> None:
    print(f"[crowd] {message}", flush=True)


@dataclass(frozen=True)
class CrowdSettings:
    url: str
    bots: int = 3
    auction_s: int = 120  # each listing's duration (10 s soft close on top)
    start_price: int = 1_000
    budget: int = 20_000  # the highest maximum a simulated bidder sets
    bid_every_s: float = 4.0  # mean gap between simulated bids
    chat_every_s: float = 7.0  # mean gap between chat messages
    tick_s: float = 1.0
    restock_to: int = 5  # units a sold-out demo variant gets back at the next listing


class Account:
    """A signed-in user of the public API; signs in again before the token expires."""

    def __init__(self, url: str, email: str) -> None:
        self.url, self.email = url, email
        self._token: str | None = None
        self._at = 0.0
        self.user_id = ""

    async def token(self) -> str:
        if self._token is None or time.monotonic() - self._at > TOKEN_REFRESH_S:
            answer = await http("POST", f"{self.url}/v1/auth/login",
                                {"email": self.email, "password": DEMO_PASSWORD})
            self._token, self._at = str(answer["access_token"]), time.monotonic()
        return self._token

    async def call(self, method: str, path: str, body: Any = None, **headers: str) -> Any:
        return await http(method, self.url + path, body, token=await self.token(),
                          headers=headers)


class Bot:
    """One simulated buyer with its websocket session."""

    def __init__(self, url: str, index: int) -> None:
        self.index = index
        self.account = Account(url, bot_email(index))
        self._stack = contextlib.AsyncExitStack()
        self.session: Session | None = None
        self.channels: list[str] = []  # subscribed on every (re)connection: counted as a viewer

    async def join(self) -> None:
        """Sign in, or register the first time; top the wallet up when it runs low."""
        try:
            await self.account.token()
        except ApiError as err:
            if err.status != 401:
                raise
            await http("POST", f"{self.account.url}/v1/auth/register",
                       {"email": self.account.email, "password": DEMO_PASSWORD,
                        "display_name": bot_name(self.index)})
        self.account.user_id = str((await self.account.call("GET", "/v1/me"))["id"])
        await self.top_up(below=TOPUP // 2)

    async def top_up(self, *, below: int) -> None:
        wallet = await self.account.call("GET", "/v1/wallet")
        if int(wallet["available"]) < below:
            await self.account.call("POST", "/v1/wallet/topups", {"amount": TOPUP},
                                    **{"idempotency-key": str(uuid.uuid4())})

    async def ws(self) -> Session:
        if self.session is None or self.session.closed:
            await self.close()
            session = await self._stack.enter_async_context(Session.open(
                self.account.url, await self.account.token(), keep_publications=False))
            for channel in self.channels:
                await session.call("subscribe", channel=channel)
            self.session = session
        return self.session

    async def close(self) -> None:
        await self._stack.aclose()
        self.session = None


class Crowd:
    def __init__(self, settings: CrowdSettings, rng: random.Random) -> None:
        self.s = settings
        self.rng = rng
        self.seller = Account(settings.url, SELLER_EMAIL)
        self.bots = [Bot(settings.url, i) for i in range(min(settings.bots, MAX_BOTS))]
        self.show_id = ""
        self.show_checked = 0.0
        self.auction: dict[str, Any] = {}
        self.refreshed = 0.0
        self.follower: asyncio.Task[None] | None = None
        self._follow_stack = contextlib.AsyncExitStack()

    async def start(self) -> None:
        try:
            await self.seller.token()
        except ApiError as err:
            if err.status != 401:
                raise
            raise SystemExit(f"souk: no demo seller at {self.s.url} ({err}); the crowd runs "
                             "only against a demo (python -m api seed-demo)") from None
        self.show_id = await ensure_live_show(self.seller)
        self.show_checked = time.monotonic()
        say(f"show live: {self.show_id} ({DEMO_SHOW})")
        await asyncio.gather(*(bot.join() for bot in self.bots))
        for bot in self.bots:
            bot.channels = [f"show:{self.show_id}", f"show:{self.show_id}:chat"]
            await bot.ws()
        say(f"{len(self.bots)} simulated bidders and chatters joined")

    async def tick(self) -> None:
        await self.keep_show_live()
        await self.keep_auction_open()
        if self.bots and self.rng.random() < self.s.tick_s / self.s.bid_every_s:
            await self.bid(self.rng.choice(self.bots))
        if self.bots and self.rng.random() < self.s.tick_s / self.s.chat_every_s:
            await self.chat(self.rng.choice(self.bots))

    async def keep_show_live(self) -> None:
        """Every `SHOW_CHECK_S`, read the show; once it has ended (its seller or an operator
        ended it, or its video publisher stayed away past the grace), put a show live again and
        move the bots and the auctions there."""
        if time.monotonic() - self.show_checked < SHOW_CHECK_S:
            return
        show = await http("GET", f"{self.s.url}/v1/shows/{self.show_id}")
        self.show_checked = time.monotonic()
        if show["state"] != "ended":
            return
        await self.unfollow()
        self.auction = {}
        self.show_id = await ensure_live_show(self.seller)
        say(f"the show ended; show live: {self.show_id} ({DEMO_SHOW})")
        for bot in self.bots:  # subscribed again to the new show's channels on their next call
            await bot.close()
            bot.channels = [f"show:{self.show_id}", f"show:{self.show_id}:chat"]

    async def keep_auction_open(self) -> None:
        """Follow the show's auction over its channel (re-read over HTTP every `REFRESH_S`, or
        when the channel was lost) and list a new one when it has ended."""
        lost = self.follower is None or self.follower.done()
        if self.auction and (lost or time.monotonic() - self.refreshed > REFRESH_S):
            self.auction = await http("GET", f"{self.s.url}/v1/auctions/{self.auction['id']}")
            self.refreshed = time.monotonic()
            if lost and self.auction["state"] in LIVE:
                await self.follow()
        if self.auction and self.auction["state"] in LIVE:
            return
        if self.auction:
            a = self.auction
            result = (f"sold to {a['leader']} for {money(a['price'], a['currency'])}"
                      if a.get("outcome") == "sold" else str(a.get("outcome") or a["state"]))
            say(f"auction {a['id']} {a['state']}: {result}")
        page = await http("GET", f"{self.s.url}/v1/auctions?show_id={self.show_id}"
                                 "&state=open,scheduled&limit=1")
        self.auction = page["items"][0] if page["items"] else await self.list_auction()
        self.refreshed = time.monotonic()
        await self.follow()
        if self.auction["state"] in LIVE:  # (else it ended meanwhile: the next tick lists one)
            say(f"auction open: {self.auction['id']} until {self.auction['ends_at']} - watch "
                f"it: python -m api watch auction:{self.auction['id']}")

    async def follow(self) -> None:
        """Subscribe to the current auction's channel; its events update `self.auction`."""
        await self.unfollow()
        auction_id = self.auction["id"]
        session = await self._follow_stack.enter_async_context(Session.open(self.s.url))
        await session.call("subscribe", channel=f"auction:{auction_id}")
        # Read after subscribing: what happened before (an auction closed while the demo was
        # stopped) is in the view, what happens after comes as events.
        self.auction = await http("GET", f"{self.s.url}/v1/auctions/{auction_id}")
        self.refreshed = time.monotonic()

        async def apply() -> None:
            async for message in session.publications():
                for event in events_of(message.get("data") or {}):
                    if self.auction.get("id") == auction_id:
                        self.auction = apply_event(self.auction, event)

        self.follower = asyncio.create_task(apply())

    async def unfollow(self) -> None:
        if self.follower is not None:
            self.follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.follower
            self.follower = None
        await self._follow_stack.aclose()

    async def list_auction(self) -> dict[str, Any]:
        products = (await self.seller.call("GET", "/v1/products?mine=true&limit=100"))["items"]
        for v in to_restock(products, below=1):  # sold out: back in stock
            await self.seller.call("PATCH", f"/v1/products/{v.product_id}/variants/{v.variant_id}",
                                   {"stock": self.s.restock_to})
        pick = auction_variant(products) or auction_variant(
            (await self.seller.call("GET", "/v1/products?mine=true&limit=100"))["items"])
        if pick is None:
            raise RuntimeError("the demo seller has no variant in stock to auction")
        created: dict[str, Any] = await self.seller.call("POST", "/v1/auctions", {
            "variant_id": pick.variant_id, "show_id": self.show_id,
            "start_price": self.s.start_price, "duration_s": self.s.auction_s,
            "soft_close_s": 10})
        return created

    async def bid(self, bot: Bot) -> None:
        amount = next_bid(self.auction, me=bot.account.user_id, budget=self.s.budget,
                          roll=self.rng.random(), now_ms=int(time.time() * 1000))
        if amount is None:
            return
        try:
            await (await bot.ws()).call("bid", auction_id=self.auction["id"], amount=amount,
                                        bid_id=str(uuid.uuid4()))
        except ApiError as err:  # outbid meanwhile, closed, short of money: the crowd moves on
            if err.code == "insufficient_funds":
                await bot.top_up(below=TOPUP)

    async def chat(self, bot: Bot) -> None:
        text = chat_line(self.rng.random(), price=self.auction.get("price"),
                         currency=str(self.auction.get("currency", "")))
        with contextlib.suppress(ApiError):  # muted, rate-limited: skip this one
            await (await bot.ws()).call("publish", channel=f"show:{self.show_id}:chat",
                                        data={"text": text})

    async def close(self) -> None:
        await self.unfollow()
        for bot in self.bots:
            await bot.close()


async def ensure_live_show(seller: Account) -> str:
    """The demo show (the oldest of the seller's shows with its title that has not ended, as
    the seed picks it; a new one when all have ended), put live. Returns its id. The crowd and
    the video loop both call this: when both create a show at once, both then take the oldest
    (the other stays scheduled, for the next time)."""
    me = await seller.call("GET", "/v1/me")

    async def not_ended() -> list[dict[str, Any]]:
        shows = (await seller.call("GET", f"/v1/shows?seller_id={me['id']}&limit=100"))["items"]
        return [s for s in reversed(shows) if s["title"] == DEMO_SHOW and s["state"] != "ended"]

    mine = await not_ended()
    if not mine:
        await seller.call("POST", "/v1/shows", {"title": DEMO_SHOW})
        mine = await not_ended()
    show = mine[0]
    if show["state"] == "scheduled":
        with contextlib.suppress(ApiError):  # started meanwhile (a publisher, another crowd)
            await seller.call("POST", f"/v1/shows/{show['id']}/start")
    return str(show["id"])


async def wait_ready(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            await http("GET", f"{url}/readyz")
            return
        except (OSError, ApiError):
            if time.monotonic() > deadline:
                raise SystemExit(f"souk: no server ready at {url}") from None
            await asyncio.sleep(0.5)


async def run(settings: CrowdSettings, stop: asyncio.Event, *, seed: int | None = None) -> None:
    """Run the crowd until `stop` is set. A failing tick (the server restarting, Redis away) is
    reported once and retried at the next tick."""
    await wait_ready(settings.url, 120)
    crowd = Crowd(settings, random.Random(seed))  # noqa: S311 - a simulation, not secrets
    started = failing = False
    try:
        while not stop.is_set():
            try:
                if not started:
                    await crowd.start()
                    started = True
                await crowd.tick()
                failing = False
            except (OSError, ApiError, WebSocketException) as err:  # (timeouts are OSErrors)
                if not failing:
                    say(f"paused: {err!r} (retrying)")
                failing = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), settings.tick_s)
    finally:
        await crowd.close()
