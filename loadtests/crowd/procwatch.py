"""CPU of each process group during a run, sampled from /proc every second in a thread: the
server, the locust processes, Redis and PostgreSQL (every process of that name on the machine:
on a shared box they serve others too), and the whole machine."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from loadtests.fanout.procstat import CLOCK_TICKS, busy_percent, machine, parse_cpu_ticks


def pids_named(*names: str) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if d.joinpath("comm").read_text().strip() in names:
                    out.append(int(d.name))
            except OSError:
                continue
    return out


def with_children(pids: list[int]) -> list[int]:
    """`pids` and every process descended from them (a locust worker's WHEP helper)."""
    parent: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                text = d.joinpath("stat").read_text()
            except OSError:
                continue
            parent[int(d.name)] = int(text[text.rindex(")") + 2:].split()[1])
    out, todo = set(pids), list(pids)
    while todo:
        pid = todo.pop()
        for child, ppid in parent.items():
            if ppid == pid and child not in out:
                out.add(child)
                todo.append(child)
    return sorted(out)


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            total += parse_cpu_ticks(Path(f"/proc/{pid}/stat").read_text())
        except (OSError, ValueError):
            continue  # gone: its CPU since the last sample is lost, say so in the notes
    return total / CLOCK_TICKS


class Watch:
    """`groups` maps a label to a function returning that group's pids (called each sample)."""

    def __init__(self, groups: dict[str, Callable[[], list[int]]], period_s: float = 1.0):
        self.groups = groups
        self.period = period_s
        self.series: dict[str, list[tuple[float, float]]] = {k: [] for k in groups}
        self.machine_busy: list[dict[str, float]] = []
        self.seen: set[str] = set()  # groups that had a process at some sample
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Watch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        before = machine()
        while not self._stop.is_set():
            now = time.monotonic()
            for label, find in self.groups.items():
                pids = find()
                if pids:
                    self.seen.add(label)
                self.series[label].append((now, cpu_seconds(pids)))
            after = machine()
            self.machine_busy.append(busy_percent(before, after))
            before = after
            self._stop.wait(self.period)

    def table(self, window_s: float = 5.0) -> list[tuple[str, float, float, float]]:
        """(label, CPU s over the run, mean % of a core, peak % over any `window_s`)."""
        out = []
        for label, points in self.series.items():
            if len(points) < 2 or label not in self.seen:
                continue
            wall = points[-1][0] - points[0][0]
            used = max(0.0, points[-1][1] - points[0][1])
            peak = 0.0
            for i, (t0, c0) in enumerate(points):
                for t1, c1 in points[i + 1:]:
                    if t1 - t0 >= window_s:
                        peak = max(peak, 100 * (c1 - c0) / (t1 - t0))
                        break
            out.append((label, used, 100 * used / wall if wall else 0.0, peak))
        return out

    def first_saturated(self, threshold: float = 90.0, window_s: float = 5.0) -> str | None:
        """The group that first used more than `threshold` % of a core over `window_s`."""
        first: tuple[float, str] | None = None
        for label, points in self.series.items():
            for i, (t0, c0) in enumerate(points):
                hit = next(((t1, c1) for t1, c1 in points[i + 1:] if t1 - t0 >= window_s), None)
                if hit and 100 * (hit[1] - c0) / (hit[0] - t0) >= threshold:
                    if first is None or t0 < first[0]:
                        first = (t0, label)
                    break
        return None if first is None else first[1]

    def box(self) -> str:
        """The machine's whole CPU use over the run, split into the groups and the rest (on a
        shared machine, other people's work)."""
        rows = self.table()
        if not rows or not self.machine_busy:
            return "no samples"
        points = next(iter(self.series.values()))
        wall = points[-1][0] - points[0][0]
        cores = max(1, len(self.machine_busy[0]))
        total = self.machine_mean() / 100 * cores * wall
        ours = sum(s for _, s, _, _ in rows)
        parts = ", ".join(f"{label} {s:.0f}" for label, s, _, _ in rows)
        return (f"the box used {total:.0f} core-seconds of {cores * wall:.0f} over {wall:.0f} s "
                f"({self.machine_mean():.0f}% of {cores} cores): {parts}, everything else "
                f"{max(0.0, total - ours):.0f}")

    def machine_mean(self) -> float:
        if not self.machine_busy:
            return 0.0
        per = [sum(v for k, v in b.items()) / max(1, len(b)) for b in self.machine_busy]
        return sum(per) / len(per)
