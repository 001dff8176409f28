"""Bidders: signed in, watching the hot auction and bidding on it over the websocket `bid` op at
`bid_rate` a second each (Poisson), `frenzy_bid_rate` in the last `frenzy_s` before its end
(soft close pushes the end on, and the frenzy with it). A bid that lost a race (`bid_too_low`)
or came after the close (`auction_not_open`) is a business outcome, reported under its own
name; anything else is a failure."""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

from locust import task

from loadtests.crowd.base import BID_CLOCK, WsUser, auction_delays, plan
from loadtests.crowd.plan import next_bid
from loadtests.crowd.tracker import AuctionWatch
from loadtests.crowd.wsclient import CommandError

EXPECTED = ("bid_too_low", "auction_not_open")


class Bidder(WsUser):
    role = "bidders"

    def wait_time(self) -> float:
        """Poisson at the phase's rate, but a wait never sleeps through a change of phase:
        the auction's opening and the start of the frenzy are met within one frenzy gap."""
        p, now = plan(), self.now()
        if p.frenzy(now, self.watch.ends_at_ms):
            return random.expovariate(p.frenzy_bid_rate)
        wait = random.expovariate(p.bid_rate)
        ends = (self.watch.ends_at_ms or p.auction_ends_at_ms) / 1000
        jitter = random.uniform(0, 1 / p.frenzy_bid_rate)
        opens = p.started_at + p.warmup_s
        if now < opens:
            wait = min(wait, opens - now + random.uniform(0, 1 / p.bid_rate))
        return max(0.0, min(wait, ends - p.frenzy_s - now + jitter))

    def on_start(self) -> None:
        self.watch = AuctionWatch()
        self.account = self.take_account(self.environment)
        sock = self.open_socket(self.environment, self.account.token,
                                on_publication=self._publication)
        sock.subscribe(f"auction:{plan().auction_id}")

    def _publication(self, channel: str, msg: dict[str, Any], now: float) -> None:
        if self.socket is not None:
            auction_delays(self.watch, self.socket, plan().auction_id, msg.get("data"), now)

    @task
    def bid(self) -> None:
        p = plan()
        if self.watch.outcome is not None or not self.socket_ok() or self.socket is None:
            return
        if self.now() < p.started_at + p.warmup_s:
            return  # the auction opens when the warm-up ends
        price = self.watch.price if self.watch.price is not None else p.start_price
        amount = next_bid(price, self.watch.leader_id == self.account.id,
                          self.watch.price is not None, p.start_price, random.randint(0, 2))
        if amount == 0 or (p.funds and amount > p.funds):
            return
        name = "bid (frenzy)" if p.frenzy(self.now(), self.watch.ends_at_ms) else "bid"
        sent = time.monotonic()
        try:
            result = self.socket.command("bid", name=name, expected=EXPECTED,
                                         auction_id=p.auction_id, amount=amount,
                                         bid_id=str(uuid.uuid4()))
        except CommandError:
            return
        if result is None:
            return
        seq = result.get("seq")
        if isinstance(seq, int):
            for early in BID_CLOCK.record(p.auction_id, seq, sent):
                self.socket.report("PUSH", "auction bid→watcher", early * 1000)
        if self.watch.price is None or result.get("price", 0) >= self.watch.price:
            self.watch.price = result.get("price", self.watch.price)
            if result.get("leading"):
                self.watch.leader_id = self.account.id
        if isinstance(result.get("ends_at"), int):
            self.watch.ends_at_ms = result["ends_at"]
