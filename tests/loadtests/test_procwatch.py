"""The run's CPU table and "what saturated first", from /proc samples (synthetic series here,
and one real sample of this process)."""

from __future__ import annotations

import os

from loadtests.crowd.procwatch import Watch, cpu_seconds, with_children


def test_table_and_first_saturated() -> None:
    w = Watch({"server": list, "locust": list})
    w.seen = {"server", "locust"}
    # server: 50% of a core throughout; locust: idle, then a full core from t=10
    w.series["server"] = [(t, 0.5 * t) for t in range(0, 21)]
    w.series["locust"] = [(t, 0.0 if t < 10 else float(t - 10)) for t in range(0, 21)]
    rows = {label: (s, mean, peak) for label, s, mean, peak in w.table()}
    assert rows["server"] == (10.0, 50.0, 50.0)
    assert rows["locust"] == (10.0, 50.0, 100.0)
    assert w.first_saturated() == "locust"
    assert w.first_saturated(threshold=101) is None
    w.machine_busy = [{"cpu0": 100.0, "cpu1": 50.0}] * 3  # 75% of 2 cores over 20 s: 30 core-s
    assert w.box() == ("the box used 30 core-seconds of 40 over 20 s (75% of 2 cores): "
                       "server 10, locust 10, everything else 10")


def test_groups_that_never_had_a_process_are_left_out() -> None:
    w = Watch({"publisher": list})
    w.series["publisher"] = [(0, 0.0), (10, 0.0)]
    assert w.table() == []


def test_reads_this_process() -> None:
    assert cpu_seconds([os.getpid()]) > 0
    assert os.getpid() in with_children([os.getpid()])
    assert cpu_seconds([2**22 + 7]) == 0  # gone (or never was): no error
