"""Accounting of the fan-out benchmark: decoding, gaps/reorders, latency percentiles, /proc."""

from __future__ import annotations

import os
import time

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadtests.fanout import procstat
from loadtests.fanout.publishers import make_payload
from loadtests.fanout.stats import ConnTracker, Recorder, Summary, decode_frame, percentile

MS = 1_000_000


def pub(offset: int, ts: int, channel: str = "show:x:chat") -> bytes:
    return b'{"channel":"%s","offset":%d,"data":%s}' % (channel.encode(), offset,
                                                       make_payload(offset, ts))


def test_decode_single_array_and_newline_batches() -> None:
    one = decode_frame(pub(1, 5))
    arr = decode_frame(b"[" + pub(1, 5) + b"," + pub(2, 6) + b"]")
    nd = decode_frame(pub(1, 5) + b"\n" + pub(2, 6) + b"\n")
    assert [m.offset for m in one] == [1]
    assert [m.offset for m in arr] == [m.offset for m in nd] == [1, 2]
    reply = decode_frame(b'{"id":1,"result":{"epoch":"e","offset":0}}')
    assert reply[0].id == 1
    assert reply[0].offset is None
    with pytest.raises(msgspec.DecodeError):
        decode_frame(b"not json")


def test_payload_has_requested_size_and_fields() -> None:
    p = make_payload(7, 1_763_700_000_000_000_000, 200)
    assert len(p) == 200
    assert msgspec.json.decode(p)["seq"] == 7


def test_tracker_counts_gaps_and_reorders() -> None:
    t = ConnTracker()
    for off in (10, 11, 14, 13, 14, 15):
        t.observe(off)
    assert (t.first, t.last, t.received, t.gaps, t.reorders) == (10, 15, 4, 2, 2)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=60))
def test_tracker_in_order_stream_never_reports_reorders(steps: list[int]) -> None:
    t = ConnTracker()
    off = 0
    for s in steps:
        off += s
        t.observe(off)
    assert t.reorders == 0
    assert t.received == len(steps)
    assert t.gaps == off - steps[0] + 1 - len(steps)


def test_recorder_latency_from_payload_timestamps_and_replies_passed_through() -> None:
    rec = Recorder()
    t = ConnTracker()
    frame = b"[" + pub(1, 100 * MS) + b"," + pub(2, 103 * MS) + b"]"
    others = rec.on_frame(t, frame, 105 * MS)
    assert others == []
    assert rec.delivered == 2
    assert rec.hist == {500: 1, 200: 1}  # 5 ms and 2 ms in 10 µs buckets
    reply = rec.on_frame(t, b'{"id":3,"result":{}}', 106 * MS)
    assert [m.id for m in reply] == [3]
    # a second connection reuses the decoded timestamp by offset
    rec.on_frame(ConnTracker(), pub(1, 0), 101 * MS)
    assert rec.hist[100] == 1


def test_recorder_skips_latency_while_not_recording_but_counts() -> None:
    rec = Recorder()
    rec.recording = False
    rec.on_frame(ConnTracker(), pub(1, 1), 2)
    assert rec.delivered == 1
    assert rec.hist == {}


def test_recorder_untimed_payload() -> None:
    rec = Recorder()
    rec.on_frame(ConnTracker(), b'{"channel":"c","offset":1,"data":{"x":1}}', 5)
    assert (rec.delivered, rec.untimed, rec.hist) == (1, 1, {})


def test_percentile_nearest_rank() -> None:
    hist = {k: 1 for k in range(100)}  # 100 samples, 10 µs .. 1000 µs upper edges
    assert percentile(hist, 0.5) == pytest.approx(0.50)
    assert percentile(hist, 0.99) == pytest.approx(0.99)
    assert percentile(hist, 1.0) == pytest.approx(1.0)
    assert percentile({}, 0.5) == 0.0
    assert percentile({7: 3}, 0.01) == pytest.approx(0.08)
    with pytest.raises(ValueError):
        percentile(hist, 0)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=5000), min_size=1, max_size=300),
       st.sampled_from([0.5, 0.9, 0.99, 1.0]))
def test_percentile_matches_sorted_list(values: list[int], q: float) -> None:
    hist: dict[int, int] = {}
    for v in values:
        hist[v] = hist.get(v, 0) + 1
    ordered = sorted(values)
    import math

    expected = ordered[max(1, math.ceil(round(q * len(values), 9))) - 1]
    assert percentile(hist, q) == pytest.approx((expected + 1) * 0.01)


def test_summary_missing_counts_every_connection() -> None:
    a, b, c = ConnTracker(), ConnTracker(), ConnTracker()
    for off in (1, 2, 3):
        a.observe(off)
    b.observe(2)
    c.close_code = 4008
    s = Summary.of([a, b, c], published=3)
    assert (s.connections, s.delivered, s.missing, s.closed) == (3, 4, 5, 1)


STAT = ("1234 (python3 -m (uv) x) S 1 1234 1234 0 -1 4194560 9000 0 0 0 "
        "250 50 0 0 20 0 3 0 100 250000000 12000 18446744073709551615")


def test_procstat_parsing() -> None:
    assert procstat.parse_cpu_ticks(STAT) == 300
    assert procstat.parse_rss_bytes("Name:\tx\nVmRSS:\t  2048 kB\n") == 2048 * 1024
    with pytest.raises(ValueError):
        procstat.parse_rss_bytes("Name:\tx\n")
    before, after = procstat.Sample(1.0, 0), procstat.Sample(1.5, 0)
    assert procstat.cpu_percent(before, after, 2.0) == pytest.approx(25.0)


def test_procstat_reads_own_process() -> None:
    import os

    s = procstat.sample(os.getpid())
    assert s.rss > 1_000_000
    assert s.cpu_s > 0


def test_decode_newline_batch_with_blank_lines_and_embedded_escaped_newline() -> None:
    frame = (b'{"channel":"c","offset":1,"data":{"ts":1,"t":"a\\nb"}}\n\n'
             b'{"id":2,"result":{}}\n')
    msgs = decode_frame(frame)
    assert [(m.offset, m.id) for m in msgs] == [(1, None), (None, 2)]


def test_machine_cpu_busy_per_core() -> None:
    before = procstat.parse_cpu_lines("cpu  9 9 9 9 9 9 9 9\ncpu0 10 0 10 80 0 0 0 0 0 0\n")
    after = procstat.parse_cpu_lines("cpu0 40 0 20 130 10 0 0 0 0 0\nintr 5\n")
    assert before == {"cpu0": (20, 100)}
    assert procstat.busy_percent(before, after) == {"cpu0": 40.0}


def test_publisher_quantiles() -> None:
    from loadtests.fanout.publishers import quantiles

    assert quantiles([]) == {}
    q = quantiles([float(v) for v in range(1, 101)])
    assert q == {"p50": 50.0, "p99": 99.0, "max": 100.0, "n": 100}


def test_suite_renders_markdown_rows(tmp_path: object) -> None:
    import json
    from pathlib import Path

    from loadtests.fanout.suite import render

    row = {"label": "hub", "servers": 1, "subscribers": 1000, "rate": 270.0, "burst": 1,
           "delivered_per_s": 269000, "latency_ms": {"p50": 3.0, "p99": 40.0, "max": 55.0},
           "missing": 0, "drained": True, "gaps": 0, "reorders": 0, "closed": 0,
           "server_cpu_pct": 80.0, "rss_per_idle_conn_kb": 14.0, "generator_cpu_pct": 50.0,
           "cores_busy_pct": {"cpu0": 99.0, "cpu1": 60.0}, "loadavg_1m": 1.5}
    path = Path(str(tmp_path)) / "r.jsonl"
    path.write_text(json.dumps(row) + "\n")
    lines = render(path).splitlines()
    assert len(lines) == 3
    assert lines[2].startswith("| hub | 1 | 1,000 | 270 | 1 | 269,000 | 3 | 40 | 55 | 0 | 0 | 0 |")
    assert lines[2].endswith("| 99/60 | 1.5 |")


def test_procstat_sample_counts_this_process_work() -> None:
    before = procstat.sample(os.getpid()).cpu_s
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:  # burn 50 ms of CPU
        pass
    used = procstat.sample(os.getpid()).cpu_s - before
    assert 0.03 <= used < 5.0
