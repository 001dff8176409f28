"""The demo crowd's and the terminal client's pure rules (api/demo_rules.py), and the README
tour reader (tests/demo/tour.py), without I/O."""

from __future__ import annotations

from typing import Any

import pytest

from api.demo_rules import (
    MAX_BOTS,
    QUIET_MS,
    apply_event,
    auction_variant,
    bot_email,
    chat_line,
    describe,
    describe_ack,
    money,
    next_bid,
    to_restock,
)
from tests.demo import tour

NOW = 1_800_000_000_000


def view(**kw: Any) -> dict[str, Any]:
    base = {"id": "a1", "state": "open", "price": 1000, "start_price": 1000,
            "min_next_bid": 1000, "leader": None, "leader_id": None, "bid_count": 0,
            "ends_at_ms": NOW + 60_000, "currency": "USD"}
    return base | kw


def test_money() -> None:
    assert money(1500) == "15.00"
    assert money(5, "USD") == "0.05 USD"
    assert money(None) == "-"


def test_a_bot_bids_from_the_minimum_up_to_its_budget() -> None:
    assert next_bid(view(), me="b1", budget=5000, roll=0.0, now_ms=NOW) == 1000
    assert next_bid(view(), me="b1", budget=5000, roll=0.99, now_ms=NOW) == 1250
    assert next_bid(view(min_next_bid=4900), me="b1", budget=5000, roll=0.99, now_ms=NOW) == 5000


@pytest.mark.parametrize("change", [
    {"state": "closed"}, {"state": "scheduled"},          # not open
    {"leader_id": "b1"},                                   # already leads
    {"min_next_bid": 5001},                                # beyond the budget
    {"min_next_bid": None},
    {"ends_at_ms": NOW + QUIET_MS - 1},                    # too close to the end: no sniping
])
def test_a_bot_stays_out(change: dict[str, Any]) -> None:
    assert next_bid(view(**change), me="b1", budget=5000, roll=0.5, now_ms=NOW) is None


def test_events_update_the_followed_view() -> None:
    v = apply_event(view(), {"type": "bid", "price": 1000, "leader": "Nadia", "leader_id": "b1",
                             "bid_count": 1, "ends_at": NOW + 70_000})
    assert (v["price"], v["leader_id"], v["bid_count"], v["ends_at_ms"]) == (
        1000, "b1", 1, NOW + 70_000)
    assert v["min_next_bid"] > 1000  # one increment above the price once someone leads
    v = apply_event(v, {"type": "extended", "ends_at": NOW + 80_000})
    assert v["ends_at_ms"] == NOW + 80_000
    voided = apply_event(v, {"type": "bid_voided", "price": 1000, "leader": None,
                             "leader_id": None, "bid_count": 0})
    assert voided["min_next_bid"] == 1000  # nobody leads: the start price again
    closed = apply_event(v, {"type": "closed", "outcome": "sold", "price": 1000,
                             "winner": "Nadia", "winner_id": "b1"})
    assert (closed["state"], closed["outcome"], closed["min_next_bid"]) == ("closed", "sold", None)
    assert apply_event(v, {"type": "cancelled", "reason": "x"})["state"] == "cancelled"
    assert v["state"] == "open"  # the input is not changed


def products(*stocks: int) -> list[dict[str, Any]]:
    return [{"id": f"p{i}", "variants": [{"id": f"v{i}", "stock": s}]}
            for i, s in enumerate(stocks)]


def test_the_next_auction_takes_the_variant_with_most_stock() -> None:
    pick = auction_variant(products(2, 7, 0))
    assert pick is not None and pick.variant_id == "v1"
    assert auction_variant(products(0, 0)) is None
    assert [p.variant_id for p in to_restock(products(2, 7, 0), below=5)] == ["v0", "v2"]


def test_bots_and_chat_are_bounded_and_deterministic() -> None:
    assert MAX_BOTS == 6 and bot_email(0) == "bot1@demo.souk.dev"
    assert chat_line(0.42, price=1500, currency="USD") == chat_line(0.42, price=1500,
                                                                    currency="USD")
    lines = {chat_line(i / 50, price=1500, currency="USD") for i in range(50)}
    assert any("15.00 USD" in line for line in lines) and len(lines) > 5


def test_describe_reads_single_events_and_batches() -> None:
    single = describe("auction:a1", {"type": "bid", "auction_id": "a1", "seq": 3, "price": 1500,
                                     "leader": "Nadia", "leader_id": "u1", "bid_count": 3,
                                     "ends_at": NOW, "extended": True}, currency="USD",
                      now_ms=NOW)
    assert len(single) == 1 and "bid #3  price 15.00 USD  leader Nadia" in single[0]
    assert single[0].endswith(", extended)")
    batch = {"type": "batch", "auction_id": "a1", "people": [["u1", "Nadia"], ["u2", "Karim"]],
             "ends_at": NOW, "events": [[4, 1600, 1, 4, 0], [5, 1700, 0, 5, 0],
                                        {"seq": 6, "type": "closed", "outcome": "sold",
                                         "price": 1700, "winner": "Nadia", "winner_id": "u1"}]}
    lines = describe("auction:a1", batch, currency="USD", now_ms=NOW)
    assert ["leader Karim" in lines[0], "leader Nadia" in lines[1]] == [True, True]
    assert lines[2].endswith("closed  sold to Nadia for 17.00 USD")
    chat = describe("show:s1:chat", {"type": "chat", "user_id": "0123456789", "text": "hi",
                                     "ts": NOW}, now_ms=NOW)
    assert chat[0].endswith("chat  01234567: hi")
    assert describe("show:s1", {"type": "state", "state": "live"}, now_ms=NOW)[0].endswith(
        "show is live")


def test_the_ack_shows_the_maximum_beside_the_price() -> None:
    text = describe_ack({"seq": 9, "amount": 1500, "price": 1000, "leading": True,
                         "replayed": False}, "USD")
    assert text == ("accepted #9: your maximum 15.00 USD (amount 1500), price now 10.00 USD "
                    "(price 1000), you lead")
    assert "outbid at once" in describe_ack({"seq": 1, "amount": 1, "price": 2,
                                             "leading": False})


def test_the_tour_reader() -> None:
    block = "\n".join([
        "A=1   # a comment's apostrophe",
        "# a comment",
        "curl -s x \\",
        "  -d '{}'",
        "# → {\"a\":...,\"b\":2}",
        "B=$(python3 -c 'print(",
        "  1)')",
        "echo two lines",
        "# → ...one...",
        "# → last",
    ])
    steps = tour.steps(block)
    assert [s.command.split()[0] for s in steps] == ["A=1", "curl", "B=$(python3", "echo"]
    assert steps[1].expected == ['{"a":...,"b":2}']
    assert tour.check(steps[1], '{"a":1,"b":2}') == []
    assert tour.check(steps[1], '{"a":1,"b":3}') != []
    assert tour.check(steps[0], "") == []
    assert tour.check(steps[0], "noise") != []  # a step with nothing expected prints nothing
    assert tour.check(steps[3], "the one\nmiddle\nlast") == []
    assert tour.check(steps[3], "last\nthe one") != []  # in order


def test_the_rules_module_does_no_io() -> None:
    import ast

    from tests.test_layout import IO_LIBRARIES, ROOT

    tree = ast.parse((ROOT / "api" / "demo_rules.py").read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert not imported & set(IO_LIBRARIES)
