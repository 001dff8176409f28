"""Public event payloads for the `auction:{id}` channel (times as integer ms, as in websocket
frames). Pure. Leader and winner are shown by display name (and id); maxima and the reserve
never appear.

One commit is one publication: a commit that produced one event publishes that event; one that
produced several (a burst of bids committed together, a bid and its extension) publishes
`{"type": "events", "auction_id", "events": [...]}` with the events in seq order. Watchers get
every event, and the hub writes and every client parses one message per commit instead of one
per bid. `events_of(data)` is the client's rule for reading either shape."""

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
    payloads = [event_payload(auction_id, e, names) for e in events]
    if len(payloads) <= 1:
        return payloads
    return [{"type": "events", "auction_id": str(auction_id), "events": payloads}]


def events_of(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The events one `auction:{id}` publication carries, in seq order."""
    if data.get("type") == "events":
        return list(data["events"])
    return [dict(data)]


def people(events: list[Event]) -> set[uuid.UUID]:
    """The users named in `events` (to look up display names once)."""
    out: set[uuid.UUID] = set()
    for e in events:
        who = getattr(e, "leader", None) or getattr(e, "winner", None)
        if who is not None:
            out.add(who)
    return out
