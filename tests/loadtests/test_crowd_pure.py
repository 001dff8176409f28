"""The show-night load test's pure parts: the plan, what a client learns from frames, and the
summary's verdict (errors or a broken invariant fail the run)."""

from __future__ import annotations

from pathlib import Path

import orjson

from loadtests.crowd.plan import Account, Plan, increment, next_bid
from loadtests.crowd.summary import (
    Op,
    Report,
    parse_exceptions,
    parse_failures,
    parse_stats,
    render,
)
from loadtests.crowd.tracker import (
    AuctionWatch,
    BidClock,
    Gaps,
    channel_kind,
    messages,
    server_time_ms,
)

STATS = """Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,\
Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,\
90%,95%,98%,99%,99.9%,99.99%,100%
WS,bid,10,1,5,6,1,20,0,2.5,0.1,5,6,7,8,9,12,15,20,20,20,20
PUSH,auction bid→watcher,40,0,9,9,2,30,0,10.0,0,9,10,11,12,13,20,25,30,30,30,30
,Aggregated,50,1,8,8,1,30,0,12.5,0.1,8,9,10,11,12,19,24,29,30,30,30
"""


def plan(**kw: object) -> Plan:
    base = dict(base_url="http://127.0.0.1:1", started_at=1000.0, seconds=60, warmup_s=10,
                show_id="s", auction_id="a", auction_ends_at_ms=1_050_000, frenzy_s=10,
                flash_variant_id="f", flash_units=5, flash_at=1030.0, catalog_variant_ids=["c"],
                counts={"bidders": 3})
    return Plan(**(base | kw))  # type: ignore[arg-type]


def test_plan_round_trips_and_phases(tmp_path: Path) -> None:
    p = plan(accounts={"bidders": [Account("u1", "t1"), Account("u2", "t2")]})
    p.save(tmp_path / "plan.json")
    again = Plan.load(tmp_path / "plan.json")
    assert again == p
    assert p.in_warmup(1009.9) and not p.in_warmup(1010)
    assert not p.frenzy(1039.9) and p.frenzy(1040)
    assert not p.frenzy(1045, ends_at_ms=1_070_000)  # soft close moved the end: and the frenzy
    assert not p.flash_open(1029.9) and p.flash_open(1030)


def test_workers_take_disjoint_accounts() -> None:
    pool = [Account(str(i), "t") for i in range(6)]
    p = plan(accounts={"bidders": pool}, workers=2)
    w0 = [p.account("bidders", 0, 2, n).id for n in range(3)]
    w1 = [p.account("bidders", 1, 2, n).id for n in range(3)]
    assert w0 == ["0", "2", "4"] and w1 == ["1", "3", "5"]
    assert p.account("bidders", 0, 2, 3).id == "0"  # more users than accounts: wraps


def test_bid_amounts_follow_the_increment_table() -> None:
    assert increment(0) == 100 and increment(2_999) == 100 and increment(3_000) == 200
    assert next_bid(1000, False, False, 1000, 0) == 1000  # nobody leads: the start price
    assert next_bid(1000, False, True, 1000, 0) == 1100
    assert next_bid(2900, False, True, 1000, 1) == 3000 + 200
    assert next_bid(5000, True, True, 1000, 2) == 0  # leading: no bid


def test_frames_split_into_messages_and_channel_kinds() -> None:
    frame = b'{"channel":"auction:x","offset":1,"data":{}}\n{"id":3,"result":{}}\n'
    assert [m.get("id") for m in messages(frame)] == [None, 3]
    assert channel_kind("auction:abc") == "auction"
    assert channel_kind("show:abc:chat") == "show chat"
    assert channel_kind("user:abc") == "user"


def test_gaps_are_counted_by_offset() -> None:
    g = Gaps()
    g.start("c", 4)
    assert [g.observe("c", o) for o in (5, 6, 9, 9, 10)] == [0, 0, 2, -1, 0]
    assert (g.missing, g.repeats) == (2, 1)
    assert g.observe("other", 7) == 0  # first sight of a channel without a subscribe offset


def test_server_clocks() -> None:
    assert server_time_ms({"type": "chat", "ts": 1_700_000_000_123}) == 1_700_000_000_123
    assert server_time_ms({"type": "order.state_changed", "at": "2026-01-01T00:00:00.5Z"}) == (
        1_767_225_600_500)
    assert server_time_ms({"type": "bid", "seq": 3}) is None
    assert server_time_ms({"type": "viewers", "ts": 5}) is None  # only chat's ts is the server's
    assert server_time_ms([1, 2]) is None


def test_auction_watch_reads_single_events_and_batches() -> None:
    w = AuctionWatch()
    assert w.apply({"type": "bid", "seq": 1, "price": 1000, "leader_id": "u1",
                    "ends_at": 5000}) == [1]
    batch = {"type": "batch", "auction_id": "a", "people": [["u2", "B"], ["u3", "C"]],
             "ends_at": 6000, "events": [[2, 1100, 0, 2, 1], [3, 1200, 1, 3, 1, 7000],
                                         {"type": "extended", "seq": 4, "ends_at": 8000}]}
    assert w.apply(orjson.loads(orjson.dumps(batch))) == [2, 3]
    assert (w.price, w.leader_id, w.ends_at_ms, w.bids_seen) == (1200, "u3", 8000, 3)
    w.apply({"type": "closed", "seq": 5, "outcome": "sold", "winner_id": "u3", "price": 1200})
    assert (w.outcome, w.winner_id) == ("sold", "u3")


def test_bid_clock_times_receipts_before_and_after_the_answer() -> None:
    clock = BidClock(size=2)
    assert clock.arrived("a", 1, 10.5) is None  # the publication beat the bid's answer
    assert clock.record("a", 1, 10.0) == [0.5]
    assert clock.arrived("a", 1, 10.25) == 0.25
    for seq in range(2, 6):
        clock.record("a", seq, 11.0)
    assert clock.arrived("a", 1, 12.0) is None  # forgotten: bounded


def test_summary_verdict_and_page() -> None:
    ops = parse_stats(STATS)
    assert [o.name for o in ops] == ["bid", "auction bid→watcher"]
    assert ops[0] == Op("WS", "bid", 10, 1, 5, 12, 20, 2.5)
    failures = parse_failures("Method,Name,Error,Occurrences,First Seen,Last Seen\n"
                              "WS,bid,CommandError('x'),1,1,1\n")
    report = Report(ops, failures, invariants=[("ledger balanced", True, "USD 0")])
    assert (report.errors, report.deliveries, report.requests, report.ok) == (1, 40, 10, False)
    page = render(report, title="T", command="cmd", config="cfg")
    assert "**FAIL**" in page and "| WS | bid | 10 | 1 | 5 | 12 | 20 | 2.5 |" in page
    clean = Report([ops[1]], [], invariants=[("no oversell", True, "")])
    assert clean.ok
    assert not Report([ops[1]], [], invariants=[("no oversell", False, "6 sold of 5")]).ok
    crashed = Report([ops[1]], [], exceptions=parse_exceptions(
        'Count,Message,Traceback,Nodes\n2,"KeyError(\'x\')",tb,local\n'))
    assert crashed.errors == 2 and not crashed.ok
