"""The cyclic garbage collector, set up for a long-running server with thousands of
connections, and measured.

CPython's full (generation 2) collection walks every tracked object. At 5,000 websocket
connections that walk took 140-180 ms here, and it ran every few seconds under bid load: a
pause every client sees. Two things shorten and thin those pauses:

- `gc.freeze()` once start-up is done: the modules, classes and functions loaded at start-up
  (most of the heap) move to the permanent generation and are never walked again.
- A larger generation-0 threshold: young collections run less often, so fewer short-lived
  objects (a bid waiting for its commit, a frame being written) happen to be alive at a
  collection and get promoted; promotions are what trigger full collections.

`GcPauses` records every collection's duration per generation in a Prometheus histogram
(`souk_gc_pause_seconds`), so the effect is visible in production, not only in a benchmark.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from prometheus_client import CollectorRegistry, Histogram

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class GcPauses:
    """Times every collection (a `gc.callbacks` hook); `close()` removes the hook."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.pauses = Histogram("souk_gc_pause_seconds", "Garbage-collector pauses",
                                ["generation"], registry=registry, buckets=_BUCKETS)
        self._by_gen = [self.pauses.labels(str(g)) for g in range(3)]
        self._started = 0.0
        gc.callbacks.append(self._hook)

    def _hook(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self._by_gen[info["generation"]].observe(time.perf_counter() - self._started)

    def close(self) -> None:
        if self._hook in gc.callbacks:
            gc.callbacks.remove(self._hook)


def settle_after_startup(gen0_threshold: int) -> None:
    """Collect what start-up left behind, freeze the rest, and set the young threshold.
    0 leaves the collector as the interpreter set it (in-process tests: freezing a test
    runner's heap would keep every later test's cycles that reach into it)."""
    if gen0_threshold <= 0:
        return
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(gen0_threshold, gen1, gen2)
