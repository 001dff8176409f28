"""One publication per commit: the batch form carries every event and reads back exactly."""

from __future__ import annotations

import uuid

import orjson

from auctions import wire
from auctions.model import BidAccepted, Cancelled, Event, Extended

AUCTION = uuid.uuid4()
ALICE, BOB = uuid.uuid4(), uuid.uuid4()
NAMES = {ALICE: "Alice", BOB: "بوب"}


def full(events: list[Event]) -> list[dict[str, object]]:
    return [wire.event_payload(AUCTION, e, NAMES) for e in events]


def test_a_single_event_is_published_as_itself() -> None:
    bid = BidAccepted(1, 1_000, ALICE, 60_000, False, False, True, 1)
    assert wire.publications(AUCTION, [bid], NAMES) == full([bid])
    assert wire.events_of(full([bid])[0]) == full([bid])
    assert wire.publications(AUCTION, [], NAMES) == []


def test_a_batch_reads_back_as_the_full_events_in_order() -> None:
    events: list[Event] = [
        BidAccepted(7, 1_000, ALICE, 60_000, False, False, True, 7),
        BidAccepted(8, 1_100, BOB, 70_000, True, True, False, 8),
        Extended(8, 70_000),
        BidAccepted(9, 1_200, ALICE, 70_000, False, True, False, 9),
        Cancelled(10, "counterfeit"),
    ]
    [batch] = wire.publications(AUCTION, events, NAMES)
    assert batch["type"] == "batch"
    assert wire.events_of(batch) == full(events)
    # survives the JSON round trip clients do
    assert wire.events_of(orjson.loads(orjson.dumps(batch))) == full(events)


def test_the_batch_form_is_much_smaller_than_one_object_per_bid() -> None:
    bidders = [uuid.uuid4() for _ in range(5)]
    names = {b: f"Bidder {i}" for i, b in enumerate(bidders)}
    events: list[Event] = [BidAccepted(s, 1_000 + 100 * s, bidders[s % 5], 60_000, False, True,
                                       False, s) for s in range(1, 41)]
    [batch] = wire.publications(AUCTION, events, names)
    one_by_one = sum(len(orjson.dumps(wire.event_payload(AUCTION, e, names))) for e in events)
    assert len(orjson.dumps(batch)) * 8 < one_by_one
