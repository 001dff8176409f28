"""What every show-night user shares: the plan (one per process, from `SOUK_PLAN`), the
process's bid clock, account hand-out, problem+json outcomes for HTTP calls, and the base
classes (`WsUser`: one websocket; `HttpWsUser`: locust's fast HTTP client plus a websocket)."""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections import defaultdict
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

from locust import User
from locust.contrib.fasthttp import FastHttpUser

from loadtests.crowd.plan import PLAN_ENV, Account, Plan
from loadtests.crowd.tracker import AuctionWatch, BidClock
from loadtests.crowd.wsclient import SoukSocket

log = logging.getLogger("souk.loadtest")
_handed_out: dict[str, itertools.count[int]] = defaultdict(itertools.count)
BID_CLOCK = BidClock()


@cache
def plan() -> Plan:
    path = os.environ.get(PLAN_ENV)
    if not path:
        raise RuntimeError(f"{PLAN_ENV} must name the plan file written by loadtests.shownight")
    return Plan.load(Path(path))


def ws_url(base_url: str) -> str:
    return base_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1) + "/v1/ws"


def problem_code(resp: Any) -> str | None:
    """The `code` of a problem+json answer, if it is one."""
    try:
        body = resp.json()
    except Exception:
        return None
    return body.get("code") if isinstance(body, dict) else None


def settle(resp: Any, ok: tuple[int, ...], expected: tuple[str, ...] = ()) -> str | None:
    """Mark a `catch_response` answer: a status in `ok` succeeds; a problem whose code is in
    `expected` succeeds under the name `<name> [<code>]` (a business outcome, e.g. a sold-out
    flash drop); anything else fails with its status and code. Returns the code, if any."""
    if resp.status_code in ok:
        resp.success()
        return None
    code = problem_code(resp)
    if code in expected:
        resp.request_meta["name"] = f"{resp.request_meta['name']} [{code}]"
        resp.success()
        return code
    if resp.status_code == 0:  # no answer at all: connection refused, reset or timed out
        resp.failure(f"no response: {resp.error!r}")
        return None
    resp.failure(f"{resp.status_code} {code or (resp.text or '')[:80]}")
    return code


def auction_delays(watch: AuctionWatch, sock: SoukSocket, auction_id: str, data: Any,
                   now: float) -> None:
    """Fold an auction publication into `watch` and report the bid-to-watcher delays known."""
    for seq in watch.apply(data):
        delay = BID_CLOCK.arrived(auction_id, seq, now)
        if delay is not None and (sock.sample >= 1 or seq % max(1, round(1 / sock.sample)) == 0):
            sock.report("PUSH", "auction bid→watcher", delay * 1000)


class _Role:
    role: ClassVar[str]
    socket: SoukSocket | None = None

    def take_account(self, environment: Any) -> Account:
        runner = environment.runner
        n = next(_handed_out[self.role])
        return plan().account(self.role, getattr(runner, "worker_index", 0) or 0,
                              plan().workers, n)

    def open_socket(self, environment: Any, token: str | None, **kw: Any) -> SoukSocket:
        p = plan()
        sock = SoukSocket(environment.events.request.fire, ws_url(p.base_url), token=token,
                          sample=p.delivery_sample, **kw)
        sock.connect()
        self.socket = sock
        return sock

    def socket_ok(self) -> bool:
        """True when the socket is open; reconnects and recovers (`SoukSocket.resume`) after a
        close that asks for it, as the apps do; False after a terminal close."""
        old = self.socket
        if old is None or old.open:
            return old is not None
        if not old.resumable:
            return False
        p = plan()
        sock = SoukSocket(old._fire, old.url, token=old.token,
                          on_publication=old.on_publication, sample=p.delivery_sample)
        try:
            sock.connect()
            self.socket = sock
            sock.resume(old)
        except Exception:
            return False
        return sock.open

    def close_socket(self) -> None:
        if self.socket is not None:
            self.socket.close()

    @staticmethod
    def now() -> float:
        return time.time()


class WsUser(_Role, User):
    abstract = True

    def on_stop(self) -> None:
        self.close_socket()


class HttpWsUser(_Role, FastHttpUser):
    abstract = True

    def auth(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def on_stop(self) -> None:
        self.close_socket()
