"""The terminal client: `python -m api watch <channel>` and `python -m api bid <auction> <amount>`.

Both talk to a running server (`--url`, default `$SOUK` or http://127.0.0.1:8000) through its
public API only, so they need no server settings. Signing in: `--token` (or `$SOUK_TOKEN`), or
`--email` with the password from `$SOUK_PASSWORD` or a prompt.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any

from api.demo_client import ApiError, Session, http, sign_in
from api.demo_rules import describe, describe_ack, money

DEFAULT_URL = "http://127.0.0.1:8000"
RELATIVE_RETRIES = 3


@dataclass(frozen=True)
class Target:
    url: str
    token: str | None = None
    email: str | None = None

    @classmethod
    def of(cls, url: str | None, token: str | None, email: str | None) -> Target:
        return cls((url or os.environ.get("SOUK") or DEFAULT_URL).rstrip("/"),
                   token or os.environ.get("SOUK_TOKEN") or None, email)

    async def access_token(self) -> str | None:
        if self.token:
            return self.token
        if self.email:
            password = os.environ.get("SOUK_PASSWORD") or getpass.getpass(
                f"Password for {self.email}: ")
            return await sign_in(self.url, self.email, password)
        return None


def _now_ms() -> int:
    return int(time.time() * 1000)


async def _currency(url: str, channel: str) -> str:
    if not channel.startswith("auction:"):
        return ""
    view = await http("GET", f"{url}/v1/auctions/{channel.removeprefix('auction:')}")
    state = (f"{view['state']}, price {money(view['price'], view['currency'])}, "
             f"leader {view['leader'] or '-'}, {view['bid_count']} bids, ends {view['ends_at']}")
    print(f"auction {view['id']}: {state}", flush=True)
    return str(view["currency"])


async def watch(target: Target, channel: str, *, count: int | None, seconds: float | None) -> int:
    """Subscribe to `channel` and print its publications readably, until Ctrl-C, `count`
    events or `seconds`. Returns the exit code."""
    currency = await _currency(target.url, channel)
    token = await target.access_token()
    async with Session.open(target.url, token) as session:
        result = await session.call("subscribe", channel=channel)
        print(f"watching {channel} (offset {result.get('offset')}); Ctrl-C to stop", flush=True)
        seen = 0
        try:
            async with asyncio.timeout(seconds):
                async for message in session.publications():
                    for line in describe(channel, message.get("data"), currency=currency,
                                         now_ms=_now_ms()):
                        print(line, flush=True)
                        seen += 1
                    if count is not None and seen >= count:
                        return 0
        except TimeoutError:
            return 0
    print("the server closed the connection", flush=True)
    return 1


async def _amount(url: str, auction_id: str, amount: str) -> tuple[int, str]:
    """`1500` is 1500 cents; `+500` is 500 above the auction's next minimum bid."""
    view = await http("GET", f"{url}/v1/auctions/{auction_id}")
    currency = str(view["currency"])
    if not amount.startswith("+"):
        return int(amount), currency
    minimum = view.get("min_next_bid")
    if minimum is None:
        raise ApiError(409, "auction_not_open", f"the auction is {view['state']}")
    return int(minimum) + int(amount[1:]), currency


async def bid(target: Target, auction_id: str, amount: str) -> int:
    """Place one bid over the websocket `bid` op and print the acknowledgement. A relative
    amount (`+N`) is computed again when others outbid the minimum meanwhile."""
    token = await target.access_token()
    if token is None:
        raise SystemExit("souk: bidding needs a signed-in buyer: --token, $SOUK_TOKEN or --email")
    async with Session.open(target.url, token) as session:
        for attempt in range(RELATIVE_RETRIES):
            value, currency = await _amount(target.url, auction_id, amount)
            try:
                ack = await session.call("bid", auction_id=auction_id, amount=value,
                                         bid_id=str(uuid.uuid4()))
            except ApiError as err:
                again = amount.startswith("+") and err.code == "bid_too_low"
                if again and attempt + 1 < RELATIVE_RETRIES:
                    continue
                print(f"refused: {err}", flush=True)
                return 1
            print(describe_ack(ack, currency), flush=True)
            return 0
    return 1


def run(coro: Any) -> int:
    try:
        code: int = asyncio.run(coro)
    except KeyboardInterrupt:
        return 0
    except (ApiError, OSError) as err:
        raise SystemExit(f"souk: {err}") from None
    return code
