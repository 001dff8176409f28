"""A WHEP viewer load on one show: N viewers in P processes, bounded, 127.0.0.1 only.

    python -m loadtests.streaming.load http://127.0.0.1:8000/v1/shows/ID/whep \
        --viewers 100 --processes 2 --sample 4 --seconds 10 [--server-pid PID ...]

Viewers join one after another (``--join-interval``), then after ``--warmup`` seconds every
viewer counts the video frames and RTP packets it receives for ``--seconds``. Most viewers
count without decoding (loadtests.streaming.viewers); ``--sample`` of them decode and read the
painted capture times (camera-to-screen latency). With ``--server-pid`` it reads the server's
CPU time and RSS from /proc over the same window. Prints one JSON summary line.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from typing import Any

from loadtests.fanout.procstat import Sample, sample_all

MAX_VIEWERS = 1000
MAX_SECONDS = 300.0


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def summarize(viewers: list[dict[str, Any]], window_s: float) -> dict[str, Any]:
    """Per-viewer delivered fps, first frames and latency over all workers' viewers (pure)."""
    playing = [v for v in viewers if v["status"] == 201 and v["frames"] > 0]
    fps = [v["frames"] / window_s for v in playing]
    ttff = [v["ttff_ms"] for v in viewers if v["ttff_ms"] is not None]
    latencies = [ms for v in viewers for ms in v["latencies_ms"]]
    counted = [v for v in viewers if not v["sampled"]]
    counting = [v for v in playing if not v["sampled"]]
    keyed = [v for v in counted if v["first_frame_key"] is not None]
    statuses: dict[str, int] = {}
    for v in viewers:
        statuses[str(v["status"])] = statuses.get(str(v["status"]), 0) + 1

    def rounded(value: float | None, digits: int = 1) -> float | None:
        return None if value is None else round(value, digits)

    return {
        "viewers": len(viewers),
        "playing": len(playing),
        "statuses": statuses,
        "errors": sorted({v["error"] for v in viewers if v["error"]})[:5],
        "busy_retries": sum(v.get("busy_retries", 0) for v in viewers),
        "fps_min": rounded(min(fps, default=0.0)),
        "fps_p5": rounded(percentile(fps, 0.05)),
        "fps_avg": rounded(statistics.fmean(fps) if fps else None),
        "ttff_p50_ms": rounded(percentile(ttff, 0.5)),
        "ttff_p95_ms": rounded(percentile(ttff, 0.95)),
        "ttff_max_ms": rounded(max(ttff, default=None)),
        "first_frame_key": f"{sum(1 for v in keyed if v['first_frame_key'])}/{len(counted)}",
        "latency_n": len(latencies),
        "latency_p50_ms": rounded(percentile(latencies, 0.5)),
        "latency_p95_ms": rounded(percentile(latencies, 0.95)),
        # the decoding viewers count no packets: scale the counting viewers' mean to all playing
        "packets_per_s": round(statistics.fmean(v["packets"] for v in counting) / window_s
                               * len(playing)) if counting else 0,
        "kbit_per_viewer": rounded(
            statistics.fmean(v["bytes"] for v in counting) * 8 / window_s / 1000
            if counting else None),
        "lost_packets": sum(v["lost"] for v in viewers),
        "audio_packets": sum(v.get("other_packets", 0) for v in viewers),
    }


def server_figures(before: Sample, start: Sample, end: Sample, window_s: float,
                   viewers: int, packets_per_s: float) -> dict[str, Any]:
    """Server cores over the window, µs per forwarded packet, RSS per viewer (pure)."""
    cores = (end.cpu_s - start.cpu_s) / window_s
    return {
        "server_cores": round(cores, 3),
        "server_us_per_packet": round(cores * 1e6 / packets_per_s, 1) if packets_per_s else None,
        "server_rss_mb": round(end.rss / 2**20, 1),
        "server_rss_kb_per_viewer": round((end.rss - before.rss) / 1024 / max(viewers, 1), 1),
    }


def sampled_indices(viewers: int, sample: int) -> list[int]:
    """Spread the decoding viewers over the join order (first, last and between)."""
    if sample <= 0:
        return []
    step = max(1, viewers // sample)
    return sorted({min(viewers - 1, i * step) for i in range(sample)})


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m loadtests.streaming.load")
    parser.add_argument("url", help="the show's WHEP endpoint on 127.0.0.1")
    parser.add_argument("--token")
    parser.add_argument("--viewers", type=int, default=10)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--sample", type=int, default=2, help="viewers that decode (latency)")
    parser.add_argument("--join-interval", type=float, default=0.05)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--server-pid", type=int, action="append", default=[])
    parser.add_argument("--raw", help="also write every viewer's figures to this JSON file")
    args = parser.parse_args(argv)
    if not args.url.startswith(("http://127.0.0.1:", "http://localhost:")):
        parser.error("the target must be on 127.0.0.1")
    if not 0 < args.viewers <= MAX_VIEWERS or not 1 <= args.processes <= 8:
        parser.error(f"--viewers 1-{MAX_VIEWERS}, --processes 1-8")
    if not 0 < args.seconds <= MAX_SECONDS or not 0 <= args.warmup <= 60:
        parser.error(f"--seconds up to {MAX_SECONDS}, --warmup up to 60")
    if not 0 <= args.join_interval <= 1:
        parser.error("--join-interval 0-1 s")
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    join_at = time.time() + 1.5  # the workers' imports
    joined_by = join_at + args.viewers * args.join_interval
    window_start = joined_by + args.warmup
    window_end = window_start + args.seconds
    before = sample_all(args.server_pid) if args.server_pid else None
    common = [args.url, "--total", str(args.viewers), "--stride", str(args.processes),
              "--join-at", repr(join_at), "--join-interval", repr(args.join_interval),
              "--window-start", repr(window_start), "--window-end", repr(window_end),
              "--sampled", *map(str, sampled_indices(args.viewers, args.sample))]
    if args.token:
        common += ["--token", args.token]
    workers = [
        subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
            [sys.executable, "-m", "loadtests.streaming.viewers", *common, "--first", str(w)],
            stdout=subprocess.PIPE, text=True)
        for w in range(min(args.processes, args.viewers))
    ]
    try:
        time.sleep(max(0.0, window_start - time.time()))
        start = sample_all(args.server_pid) if args.server_pid else None
        time.sleep(max(0.0, window_end - time.time()))
        end = sample_all(args.server_pid) if args.server_pid else None
        outputs = [w.communicate(timeout=60)[0] for w in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    parts = [json.loads(out) for out in outputs if out.strip()]
    viewers = sorted((v for part in parts for v in part["viewers"]), key=lambda v: v["index"])
    if args.raw:
        with open(args.raw, "w", encoding="utf-8") as raw:
            json.dump(viewers, raw)
    summary = summarize(viewers, args.seconds)
    summary["generator_cores"] = round(sum(p["cpu_s"] for p in parts) / args.seconds, 3)
    summary["workers_ok"] = f"{len(parts)}/{len(workers)}"
    summary["joins_unfinished_at_window_end"] = sum(p.get("late_joins", 0) for p in parts)
    if before and start and end:
        summary.update(server_figures(before, start, end, args.seconds, args.viewers,
                                      summary["packets_per_s"]))
    return summary


def main(argv: list[str] | None = None) -> int:
    print(json.dumps(run(parse_args(argv))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
