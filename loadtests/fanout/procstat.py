"""Server CPU time and memory from /proc (Linux): parsing is pure, reading is a thin wrapper."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def parse_cpu_ticks(stat_text: str) -> int:
    """utime + stime (clock ticks) from the text of /proc/<pid>/stat. The command name may hold
    spaces and parentheses, so the fields are counted from the last ')'."""
    rest = stat_text[stat_text.rindex(")") + 2 :].split()
    # rest[0] is field 3 (state); utime and stime are fields 14 and 15.
    return int(rest[11]) + int(rest[12])


def parse_rss_bytes(status_text: str) -> int:
    """VmRSS in bytes from the text of /proc/<pid>/status."""
    for line in status_text.splitlines():
        if line.startswith("VmRSS:"):
            value, unit = line.split()[1:3]
            if unit.lower() != "kb":
                raise ValueError(f"unexpected VmRSS unit {unit!r}")
            return int(value) * 1024
    raise ValueError("no VmRSS line (kernel thread or zombie?)")


@dataclass(frozen=True)
class Sample:
    """CPU seconds used so far and resident memory of one process at one instant."""

    cpu_s: float
    rss: int


def sample(pid: int) -> Sample:
    """Read /proc/<pid>; raises OSError if the process is gone."""
    base = Path(f"/proc/{pid}")
    ticks = parse_cpu_ticks(base.joinpath("stat").read_text())
    rss = parse_rss_bytes(base.joinpath("status").read_text())
    return Sample(ticks / CLOCK_TICKS, rss)


def sample_all(pids: list[int]) -> Sample:
    """The sum over several processes (a deployment of several server processes)."""
    samples = [sample(pid) for pid in pids]
    return Sample(sum(s.cpu_s for s in samples), sum(s.rss for s in samples))


def cpu_percent(before: Sample, after: Sample, wall_s: float) -> float:
    """CPU use between two samples as a percentage of one core."""
    if wall_s <= 0:
        return 0.0
    return 100.0 * (after.cpu_s - before.cpu_s) / wall_s


def parse_cpu_lines(stat_text: str) -> dict[str, tuple[int, int]]:
    """Per-CPU (busy, total) jiffies from /proc/stat; busy excludes idle and iowait."""
    out: dict[str, tuple[int, int]] = {}
    for line in stat_text.splitlines():
        if not line.startswith("cpu") or line.startswith("cpu "):
            continue
        name, *fields = line.split()
        values = [int(v) for v in fields[:8]]  # user nice system idle iowait irq softirq steal
        total = sum(values)
        out[name] = (total - values[3] - values[4], total)
    return out


def machine() -> dict[str, tuple[int, int]]:
    return parse_cpu_lines(Path("/proc/stat").read_text())


def busy_percent(
    before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]
) -> dict[str, float]:
    """How busy each CPU was between two `machine()` readings, all processes included."""
    out = {}
    for name, (busy1, total1) in after.items():
        busy0, total0 = before.get(name, (0, 0))
        span = total1 - total0
        out[name] = round(100.0 * (busy1 - busy0) / span, 1) if span > 0 else 0.0
    return out
