"""Pure rules of the demo crowd and the terminal client: what a simulated bidder bids, what a
simulated chatter says, which variant the demo seller auctions next, and how a publication is
printed. No I/O: randomness and time come in as arguments.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from auctions.model import IncrementTable
from auctions.wire import events_of

# Simulated people of the demo (`bot<N>@demo.souk.dev`, the demo password). Bounded: the demo
# never makes more than this many.
BOT_NAMES = ("Nadia", "Karim", "Lina", "Yusuf", "Rania", "Hadi")
MAX_BOTS = len(BOT_NAMES)

CHAT_LINES = (
    "Hello from {city}!",
    "Is it still available in other colours?",
    "That looks lovely",
    "How old is it?",
    "Price is {price}, still a bargain",
    "Going up again!",
    "Does it ship to {city}?",
    "Love this show",
    "What are the dimensions?",
    "Good luck everyone",
)
CITIES = ("Amman", "Beirut", "Cairo", "Casablanca", "Dubai", "Tunis")


def bot_email(index: int) -> str:
    return f"bot{index + 1}@demo.souk.dev"


def bot_name(index: int) -> str:
    return f"{BOT_NAMES[index]} (demo bot)"


def money(cents: int | None, currency: str = "") -> str:
    """`1500` → `15.00` (minor units of a two-decimal currency), with the code when given."""
    if cents is None:
        return "-"
    text = f"{cents // 100}.{cents % 100:02d}"
    return f"{text} {currency}" if currency else text


QUIET_MS = 12_000  # simulated bidders never bid this close to the end: no endless soft close


def next_bid(view: Mapping[str, Any], *, me: str, budget: int, roll: float,
             now_ms: int) -> int | None:
    """The maximum a simulated bidder (user id `me`) bids now on the auction `view` (its public
    view), or None to stay out: the auction is not open or ends within `QUIET_MS` (late bids
    would extend a soft close again and again: only people snipe), the bidder already leads,
    or the next bid is beyond its budget. `roll` in [0, 1) decides how far above the minimum
    it goes (a proxy maximum: the public price only rises as far as needed to lead)."""
    if view.get("state") != "open" or view.get("leader_id") == me:
        return None
    if int(view.get("ends_at_ms") or 0) - now_ms < QUIET_MS:
        return None
    minimum = view.get("min_next_bid")
    if not isinstance(minimum, int) or minimum > budget:
        return None
    headroom = int(roll * 6) * 50  # 0 to 250 above the minimum, in steps of 50
    return min(budget, minimum + headroom)


_STEPS = IncrementTable()  # the default table: the demo's auctions use it


def apply_event(view: Mapping[str, Any], e: Mapping[str, Any]) -> dict[str, Any]:
    """An auction's public view (`GET /v1/auctions/{id}`) after one of its channel's events
    (`auctions.wire.events_of`), so a follower need not read the view again after each."""
    v = dict(view)
    kind = e.get("type")
    if kind in ("bid", "bid_voided"):
        v.update(price=e["price"], leader=e["leader"], leader_id=e["leader_id"],
                 bid_count=e["bid_count"])
        v["min_next_bid"] = (e["price"] + _STEPS.increment(e["price"]) if e["leader_id"]
                             else v.get("start_price"))
        if kind == "bid":
            v["ends_at_ms"] = e["ends_at"]
    elif kind == "extended":
        v["ends_at_ms"] = e["ends_at"]
    elif kind == "closed":
        v.update(state="closed", outcome=e["outcome"], price=e["price"], leader=e["winner"],
                 leader_id=e["winner_id"], min_next_bid=None)
    elif kind == "cancelled":
        v.update(state="cancelled", min_next_bid=None)
    return v


def chat_line(roll: float, *, price: int | None, currency: str) -> str:
    """One chat message of a simulated viewer; `roll` in [0, 1) picks it."""
    line = CHAT_LINES[int(roll * len(CHAT_LINES)) % len(CHAT_LINES)]
    city = CITIES[int(roll * 997) % len(CITIES)]
    return line.format(city=city, price=money(price, currency))


@dataclass(frozen=True, slots=True)
class Pick:
    product_id: str
    variant_id: str
    stock: int


def variants(products: Sequence[Mapping[str, Any]]) -> list[Pick]:
    """Every variant of a product page (`GET /v1/products` items)."""
    return [Pick(str(p["id"]), str(v["id"]), int(v["stock"]))
            for p in products for v in p.get("variants", [])]


def auction_variant(products: Sequence[Mapping[str, Any]]) -> Pick | None:
    """The variant the demo seller auctions next: the one with most units for sale."""
    candidates = [v for v in variants(products) if v.stock > 0]
    return max(candidates, key=lambda v: (v.stock, v.variant_id)) if candidates else None


def to_restock(products: Sequence[Mapping[str, Any]], *, below: int) -> list[Pick]:
    """Variants with fewer than `below` units for sale (the demo crowd restocks the sold-out
    ones, so the tour's checkout and the next auction always find stock)."""
    return [v for v in variants(products) if v.stock < below]


def _clock(ms: int | None) -> str:
    if ms is None:
        return "--:--:--"
    return time.strftime("%H:%M:%S", time.localtime(ms / 1000))


def describe(channel: str, data: Any, *, currency: str = "", now_ms: int) -> list[str]:
    """Readable lines for one publication's `data` on `channel` (the terminal `watch`)."""
    stamp = _clock(now_ms)
    if channel.startswith("auction:") and isinstance(data, Mapping):
        return [f"{stamp}  {_auction_event(e, currency)}" for e in events_of(data)]
    if channel.endswith(":chat") and isinstance(data, Mapping) and "text" in data:
        who = str(data.get("user_id", "?"))[:8]
        return [f"{stamp}  chat  {who}: {data['text']}"]
    if isinstance(data, Mapping) and data.get("type") == "state":
        return [f"{stamp}  show is {data.get('state')}"]
    return [f"{stamp}  {data}"]


def _auction_event(e: Mapping[str, Any], currency: str) -> str:
    kind = e.get("type")
    if kind == "bid":
        extra = ", extended" if e.get("extended") else ""
        return (f"bid #{e.get('seq')}  price {money(e.get('price'), currency)}  "
                f"leader {e.get('leader')}  ({e.get('bid_count')} bids, ends "
                f"{_clock(e.get('ends_at'))}{extra})")
    if kind == "extended":
        return f"extended  ends {_clock(e.get('ends_at'))}"
    if kind == "closed":
        if e.get("winner"):
            return (f"closed  sold to {e.get('winner')} for "
                    f"{money(e.get('price'), currency)}")
        return f"closed  {e.get('outcome')} (no sale)"
    if kind == "cancelled":
        return f"cancelled  {e.get('reason')}"
    if kind == "bid_voided":
        return (f"bid #{e.get('voided_seq')} voided ({e.get('reason')}): price "
                f"{money(e.get('price'), currency)}, leader {e.get('leader')}")
    return str(dict(e))


def describe_ack(ack: Mapping[str, Any], currency: str = "") -> str:
    """The bid command's answer: the maximum you set (`amount`) next to the public price."""
    lead = "you lead" if ack.get("leading") else "outbid at once by a higher maximum"
    again = " (replayed)" if ack.get("replayed") else ""
    return (f"accepted #{ack.get('seq')}{again}: your maximum {money(ack.get('amount'), currency)}"
            f" (amount {ack.get('amount')}), price now {money(ack.get('price'), currency)}"
            f" (price {ack.get('price')}), {lead}")
