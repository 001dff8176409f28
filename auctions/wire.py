"""Public event payloads for the `auction:{id}` channel (times as integer ms, as in websocket
frames). Pure. Leader and winner are shown by display name (and id); maxima and the reserve
never appear.

One commit is one publication: a commit that produced one event publishes that event; one that
produced several (a burst of bids committed together, a bid and its extension) publishes them
as one batch, with the bids in a compact row form (at a hot auction most of the channel's bytes
are bids, and every byte goes to every watcher):

    {"type": "batch", "auction_id": "...", "people": [["<user id>", "<display name>"], ...],
     "ends_at": <ms>, "events": [[seq, price, leader, bid_count, flags], {...}, ...]}

An array is a bid: `leader` is an index into `people`; `flags`: 1 extended, 2 reserve met,
4 buy-it-now still offered; a sixth element is the bid's new `ends_at` when it differs from the
previous bid's (the first bid's is the batch's `ends_at`). An object is any other event in its
usual form. Items are in seq order. `events_of(data)` is the client's rule: it turns either
shape into the list of full event objects."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from auctions.model import BidAccepted, BidVoided, Cancelled, Closed, Event, Extended


def channel(auction_id: uuid.UUID) -> str:
    return f"auction:{auction_id}"


def _who(user: uuid.UUID | None, names: Mapping[uuid.UUID, str]) -> tuple[str | None, str | None]:
    if user is None:
        return None, None
    return names.get(user, "bidder"), str(user)


def event_payload(
    auction_id: uuid.UUID, event: Event, names: Mapping[uuid.UUID, str]
) -> dict[str, Any]:
    base: dict[str, Any] = {"auction_id": str(auction_id), "seq": event.seq}
    if isinstance(event, BidAccepted):
        name, uid = _who(event.leader, names)
        return base | {
            "type": "bid", "price": event.price, "amount": event.price,
            "leader": name, "leader_id": uid,
            "ends_at": event.ends_at, "extended": event.extended,
            "reserve_met": event.reserve_met, "buy_now_available": event.buy_now_available,
            "bid_count": event.bid_count,
        }
    if isinstance(event, Extended):
        return base | {"type": "extended", "ends_at": event.ends_at}
    if isinstance(event, Closed):
        name, uid = _who(event.winner, names)
        return base | {
            "type": "closed", "outcome": event.outcome.value, "winner": name, "winner_id": uid,
            "price": event.price, "reserve_met": event.reserve_met,
        }
    if isinstance(event, Cancelled):
        return base | {"type": "cancelled", "reason": event.reason}
    if isinstance(event, BidVoided):
        name, uid = _who(event.leader, names)
        return base | {
            "type": "bid_voided", "voided_seq": event.voided_seq, "reason": event.reason,
            "price": event.price, "leader": name, "leader_id": uid,
            "bid_count": event.bid_count, "reserve_met": event.reserve_met,
        }
    raise TypeError(f"unknown event {event!r}")  # pragma: no cover


def publications(
    auction_id: uuid.UUID, events: list[Event], names: Mapping[uuid.UUID, str]
) -> list[dict[str, Any]]:
    """What one commit publishes on `auction:{id}` (see the module docstring)."""
    if len(events) <= 1:
        return [event_payload(auction_id, e, names) for e in events]
    index: dict[uuid.UUID, int] = {}
    people: list[list[str]] = []
    items: list[Any] = []
    first_ends: int | None = None
    ends: int | None = None
    for e in events:
        if isinstance(e, BidAccepted):
            who = index.get(e.leader)
            if who is None:
                who = index[e.leader] = len(people)
                people.append([str(e.leader), names.get(e.leader, "bidder")])
            flags = ((_EXTENDED if e.extended else 0) | (_RESERVE_MET if e.reserve_met else 0)
                     | (_BUY_NOW if e.buy_now_available else 0))
            row: list[int] = [e.seq, e.price, who, e.bid_count, flags]
            if first_ends is None:
                first_ends = ends = e.ends_at
            elif e.ends_at != ends:
                row.append(e.ends_at)
                ends = e.ends_at
            items.append(row)
        else:
            full = event_payload(auction_id, e, names)
            del full["auction_id"]
            items.append(full)
    batch: dict[str, Any] = {"type": "batch", "auction_id": str(auction_id), "people": people}
    if first_ends is not None:
        batch["ends_at"] = first_ends
    batch["events"] = items
    return [batch]


def events_of(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The full events one `auction:{id}` publication carries, in seq order."""
    if data.get("type") != "batch":
        return [dict(data)]
    auction_id, people = data["auction_id"], data["people"]
    ends = data.get("ends_at")
    out: list[dict[str, Any]] = []
    for item in data["events"]:
        if isinstance(item, list):
            seq, price, who, bid_count, flags = item[:5]
            if len(item) > 5:
                ends = item[5]
            uid, name = people[who]
            out.append({
                "auction_id": auction_id, "seq": seq, "type": "bid", "price": price,
                "amount": price, "leader": name, "leader_id": uid,
                "ends_at": ends, "extended": bool(flags & _EXTENDED),
                "reserve_met": bool(flags & _RESERVE_MET),
                "buy_now_available": bool(flags & _BUY_NOW), "bid_count": bid_count,
            })
        else:
            out.append({"auction_id": auction_id} | item)
    return out


_EXTENDED, _RESERVE_MET, _BUY_NOW = 1, 2, 4


def people(events: list[Event]) -> set[uuid.UUID]:
    """The users named in `events` (to look up display names once)."""
    out: set[uuid.UUID] = set()
    for e in events:
        who = getattr(e, "leader", None) or getattr(e, "winner", None)
        if who is not None:
            out.add(who)
    return out
