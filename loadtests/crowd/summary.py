"""The one-page show-night summary, from locust's CSV files and the run's other findings. Pure:
text in, text out."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Op:
    kind: str  # WS, PUSH, GET, POST, ...
    name: str
    count: int
    failures: int
    p50: float
    p95: float
    p99: float
    rps: float


@dataclass
class Report:
    ops: list[Op]
    failures: list[tuple[str, str, str, int]]  # method, name, error, occurrences
    exceptions: list[tuple[int, str]] = field(default_factory=list)  # count, message
    invariants: list[tuple[str, bool, str]] = field(default_factory=list)
    cpu: list[tuple[str, float, float, float]] = field(default_factory=list)  # who, s, mean%, peak%
    notes: list[str] = field(default_factory=list)

    @property
    def errors(self) -> int:
        """Failed operations plus exceptions raised in the users' own code."""
        return sum(op.failures for op in self.ops) + sum(n for n, _ in self.exceptions)

    @property
    def deliveries(self) -> int:
        return sum(op.count for op in self.ops if op.kind == "PUSH" and not op.failures)

    @property
    def requests(self) -> int:
        return sum(op.count for op in self.ops if op.kind != "PUSH")

    @property
    def ok(self) -> bool:
        return self.errors == 0 and all(ok for _, ok, _ in self.invariants)


def _num(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 0.0


def parse_stats(text: str) -> list[Op]:
    """Rows of locust's `<prefix>_stats.csv` (the Aggregated row left out)."""
    out = []
    for row in csv.DictReader(io.StringIO(text)):
        if row.get("Name") == "Aggregated":
            continue
        out.append(Op(row["Type"], row["Name"], int(row["Request Count"]),
                      int(row["Failure Count"]), _num(row["50%"]), _num(row["95%"]),
                      _num(row["99%"]), _num(row["Requests/s"])))
    return out


def parse_failures(text: str) -> list[tuple[str, str, str, int]]:
    return [(r["Method"], r["Name"], r["Error"], int(r["Occurrences"]))
            for r in csv.DictReader(io.StringIO(text))]


def parse_exceptions(text: str) -> list[tuple[int, str]]:
    """Locust's `<prefix>_exceptions.csv`: errors raised in user code, not in requests."""
    return [(int(r["Count"]), r["Message"]) for r in csv.DictReader(io.StringIO(text))]


def render(r: Report, *, title: str, command: str, config: str) -> str:
    lines = [f"# {title}", "", f"`{command}`", "", config, "",
             f"**{'PASS' if r.ok else 'FAIL'}** — {r.requests} requests and commands, "
             f"{r.errors} errors, {r.deliveries} timed deliveries", "",
             "## Operations (ms)", "",
             "| type | name | count | failures | p50 | p95 | p99 | per s |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for op in sorted(r.ops, key=lambda o: (o.kind == "PUSH", o.kind, o.name)):
        lines.append(f"| {op.kind} | {op.name} | {op.count} | {op.failures} | {op.p50:g} | "
                     f"{op.p95:g} | {op.p99:g} | {op.rps:.1f} |")
    lines += ["", "## Errors", ""]
    errors = [f"- {n} x {m} {name}: {err}" for m, name, err, n in r.failures]
    errors += [f"- {n} x exception in a user: {msg}" for n, msg in r.exceptions]
    lines += errors or ["- none"]
    lines += ["", "## Invariants (checked after the run)", ""]
    lines += [f"- {'ok ' if ok else 'BROKEN'} {name}: {detail}"
              for name, ok, detail in r.invariants] or ["- none checked"]
    if r.cpu:
        lines += ["", "## CPU during the run (/proc; % of one core)", "",
                  "| process | CPU s | mean % | peak % (5 s) |", "|---|---:|---:|---:|"]
        lines += [f"| {who} | {s:.1f} | {mean:.0f} | {peak:.0f} |" for who, s, mean, peak in r.cpu]
    if r.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in r.notes]
    return "\n".join(lines) + "\n"
