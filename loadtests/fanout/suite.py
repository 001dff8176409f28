"""Run the fan-out matrix (1,000 / 5,000 / 10,000 subscribers) against one server kind and
append every result to a JSON-lines file; `--render` prints a Markdown table of such a file.

    python -m loadtests.fanout.suite --server websockets --out .devdata/fanout.jsonl
    python -m loadtests.fanout.suite --server hub --server-root ../wt-realtime --out ...
    python -m loadtests.fanout.suite --render .devdata/fanout.jsonl

Each run is bounded (20 s of publishing by default) and starts/stops its own server.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

# publications/s per subscriber count: a rate near each kind's expected ceiling and one lower.
# The hub's are the goals (270k/s, 225k/s, 180k/s delivered) and half of them.
MATRIX: dict[str, dict[int, list[float]]] = {
    "websockets": {1000: [40, 60], 5000: [8, 12], 10000: [4, 6]},
    "socketio": {1000: [40, 90], 5000: [8, 15], 10000: [4, 6]},
    "hub": {1000: [135, 270], 5000: [20, 45], 10000: [9, 18]},
    "blaster": {1000: [300, 1500], 5000: [60, 300], 10000: [30, 150]},
}


def run_matrix(args: argparse.Namespace, extra: list[str]) -> int:
    failures = 0
    for subscribers, rates in MATRIX[args.server].items():
        if args.only and subscribers not in args.only:
            continue
        for rate in rates:
            cmd = [sys.executable, "-m", "loadtests.fanout.run", "--start-server", args.server,
                   "--subscribers", str(subscribers), "--rate", str(rate),
                   "--duration", str(args.duration), "--json-out", args.out,
                   "--label", args.label or args.server, "--nice", str(args.nice), *extra]
            if args.server == "blaster":
                cmd += ["--burst", "10" if rate > 100 else "1"]
            print("$", " ".join(cmd[1:]), flush=True)
            rc = subprocess.call(cmd, timeout=args.duration + 240)  # noqa: S603 - fixed argv
            failures += rc != 0
    return failures


def render(path: Path) -> str:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    out = [
        "| label | servers | subs | rate/s | burst | delivered/s | p50 ms | p99 ms | max ms "
        "| missing | gaps | reord. | closed | server CPU % | RSS/idle conn KB | gen CPU % "
        "| cores busy % | load |",
        "|" + "---|" * 18,
    ]
    for r in rows:
        lat = r["latency_ms"]
        busy = "/".join(f"{v:.0f}" for v in r.get("cores_busy_pct", {}).values())
        missing = f"{r['missing']}" + ("" if r.get("drained", True) else " (backlog)")
        out.append(
            f"| {r['label']} | {r['servers']} | {r['subscribers']:,} | {r['rate']:g} "
            f"| {r['burst']} | {r['delivered_per_s']:,} | {lat['p50']:.0f} | {lat['p99']:.0f} "
            f"| {lat['max']:.0f} | {missing} | {r['gaps']} | {r['reorders']} | {r['closed']} "
            f"| {r.get('server_cpu_pct', '-')} | {r.get('rss_per_idle_conn_kb', '-')} "
            f"| {r['generator_cpu_pct']} | {busy} | {r.get('loadavg_1m', '-')} |"
        )
    return "\n".join(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--server", choices=sorted(MATRIX))
    p.add_argument("--out", default=".devdata/fanout-results.jsonl")
    p.add_argument("--duration", type=float, default=20.0)
    p.add_argument("--nice", type=int, default=0)
    p.add_argument("--label", default="")
    p.add_argument("--only", type=int, action="append", default=[],
                   help="only this subscriber count (repeatable)")
    p.add_argument("--render", default=None, help="print a Markdown table of this JSONL file")
    args, extra = p.parse_known_args()
    if args.render:
        print(render(Path(args.render)))
        return 0
    if args.server is None:
        p.error("--server or --render")
    return 1 if run_matrix(args, extra) else 0


if __name__ == "__main__":
    raise SystemExit(main())
