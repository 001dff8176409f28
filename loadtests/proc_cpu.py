"""CPU seconds of a process and of the PostgreSQL backends serving it, read from /proc.

The benchmarks run on a shared box: throughput moves with the load, CPU per operation does not
(much). A process's CPU is `utime + stime` of /proc/<pid>/stat; the backends serving a run are
found by the `application_name` its connections carry (a `?application_name=` query parameter on
the DSN, which asyncpg sends as a startup parameter) in `pg_stat_activity`, so other helpers'
backends are not counted.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` in seconds (0.0 when the process is gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            stat = f.read()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()  # the command name may hold spaces
    return (int(fields[11]) + int(fields[12])) / _TICKS  # fields 14 and 15 of proc(5)


def tagged_dsn(dsn: str, tag: str | None = None) -> tuple[str, str]:
    """`dsn` with a unique `application_name` (returned too) for finding its backends."""
    tag = tag or f"bench-{uuid.uuid4().hex[:8]}"
    parts = urlsplit(dsn)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "application_name"]
    query.append(("application_name", tag))
    return urlunsplit(parts._replace(query=urlencode(query))), tag


async def backend_pids(dsn: str, tag: str) -> list[int]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1", tag
        )
    finally:
        await conn.close()
    return [int(r["pid"]) for r in rows]


@dataclass
class CpuMeter:
    """CPU used between `start()` and `stop()` by some processes and the tagged backends.
    Backends that appear during the run count from zero (they were born inside it)."""

    dsn: str
    tag: str
    pids: list[int] = field(default_factory=list)
    label: str = "server"
    _proc0: float = 0.0
    _pg0: dict[int, float] = field(default_factory=dict)
    process_s: float = 0.0
    postgres_s: float = 0.0
    backends: int = 0

    async def start(self) -> None:
        self._proc0 = sum(cpu_seconds(p) for p in self.pids)
        self._pg0 = {p: cpu_seconds(p) for p in await backend_pids(self.dsn, self.tag)}

    async def stop(self) -> None:
        self.process_s = sum(cpu_seconds(p) for p in self.pids) - self._proc0
        now = {p: cpu_seconds(p) for p in await backend_pids(self.dsn, self.tag)}
        self.postgres_s = sum(v - self._pg0.get(p, 0.0) for p, v in now.items())
        self.backends = len(now)

    def per_op_ms(self, ops: int) -> tuple[float, float]:
        """(process, postgres) CPU milliseconds per operation."""
        if ops <= 0:
            return float("nan"), float("nan")
        return 1000 * self.process_s / ops, 1000 * self.postgres_s / ops

    def report(self, ops: int, elapsed_s: float) -> dict[str, float]:
        proc_ms, pg_ms = self.per_op_ms(ops)
        return {"process_cpu_ms_per_op": round(proc_ms, 3),
                "postgres_cpu_ms_per_op": round(pg_ms, 3),
                "process_cpu_pct": round(100 * self.process_s / elapsed_s, 1),
                "postgres_cpu_pct": round(100 * self.postgres_s / elapsed_s, 1),
                "postgres_backends": self.backends}


def load_average() -> str:
    with open("/proc/loadavg", encoding="ascii") as f:
        return " ".join(f.read().split()[:3])
