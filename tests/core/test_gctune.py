"""The collector set-up runs in a child interpreter (freezing the test runner's heap would
change every later test); the pause histogram is checked in-process."""

from __future__ import annotations

import gc
import subprocess
import sys

from prometheus_client import CollectorRegistry

from core.gctune import GcPauses


def test_settle_after_startup_freezes_and_sets_the_young_threshold() -> None:
    code = (
        "import gc; from core.gctune import settle_after_startup\n"
        "before = gc.get_threshold()\n"
        "settle_after_startup(0)\n"
        "assert gc.get_freeze_count() == 0 and gc.get_threshold() == before\n"
        "settle_after_startup(12345)\n"
        "assert gc.get_freeze_count() > 1000, gc.get_freeze_count()\n"
        "assert gc.get_threshold() == (12345, before[1], before[2])\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_every_collection_is_timed_by_generation() -> None:
    registry = CollectorRegistry()
    pauses = GcPauses(registry)
    try:
        gc.collect(0)
        gc.collect(2)
    finally:
        pauses.close()
    assert pauses._hook not in gc.callbacks

    def count(gen: str) -> float:
        value = registry.get_sample_value("souk_gc_pause_seconds_count", {"generation": gen})
        return value or 0.0

    assert count("0") >= 1 and count("2") >= 1
    seen = count("2")
    gc.collect(2)
    assert count("2") == seen  # closed: no longer observing
