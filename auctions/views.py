"""The public JSON view of an auction (HTTP bodies): never the reserve amount nor any maximum."""

from __future__ import annotations

import time
import uuid
from typing import Any

from auctions import engine, store
from auctions.model import Auction, State


def public(row: store.AuctionRow, names: dict[uuid.UUID, str]) -> dict[str, Any]:
    """What anybody may see: never the reserve amount nor any maximum."""
    a: Auction = row.auction
    state = a.state
    now = int(time.time() * 1000)  # display only: the sequencer's clock decides bids
    if state is State.SCHEDULED and now >= a.rules.starts_at:
        state = State.OPEN
    r = a.rules
    return {
        "id": str(r.auction_id),
        "seller_id": str(r.seller_id),
        "variant_id": str(row.variant_id),
        "show_id": str(row.show_id) if row.show_id else None,
        "state": state.value,
        "outcome": a.outcome.value if a.outcome else None,
        "currency": r.currency,
        "start_price": r.start_price,
        "price": a.price,
        "min_next_bid": a.min_next if state in engine.LIVE_STATES else None,
        "leader": names.get(a.leader) if a.leader else None,
        "leader_id": str(a.leader) if a.leader else None,
        "bid_count": a.bid_count,
        "seq": a.seq,
        "starts_at": store.iso(r.starts_at),
        "ends_at": store.iso(a.ends_at),
        "ends_at_ms": a.ends_at,
        "soft_close_s": r.soft_close_ms // 1000,
        "sudden_death": r.sudden_death,
        "has_reserve": r.reserve_price is not None,
        "reserve_met": a.reserve_met,
        "buy_now_price": r.buy_now_price if a.buy_now_available else None,
        "increments": [list(s) for s in r.increments.steps],
        "closed_at": store.iso(a.closed_at),
        "cancel_reason": a.cancel_reason,
        "payment_state": row.payment_state,
    }

