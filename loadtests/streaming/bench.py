"""One publisher to N viewers: server CPU, delivered fps, first frame, latency and memory.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/0 \
    flock /tmp/souk-bench.lock .venv/bin/python -m loadtests.streaming.bench \
        --size 640x480 --viewers 1 10 50 100 --seconds 10 --processes 1

Starts `uvicorn --factory api.app:create_app` on 127.0.0.1 (ICE on 127.0.0.1, fresh schema and
Redis prefix, both dropped after), registers a seller, creates a show, publishes into it with
``python -m streaming.publisher`` (the synthetic camera, 30 fps, and a tone), waits for the show
to go live, then runs loadtests.streaming.load once per viewer count, reading the server's CPU
and RSS from /proc. Prints one JSON line per count (plus the publisher's own CPU) and a
Markdown table at the end. Everything stops by itself: the publisher runs for the planned time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from loadtests.checkout_bench import free_port, register, wait_ready
from loadtests.fanout.procstat import sample
from loadtests.streaming import load
from testkit.services import drop_schema_and_keys

ROOT = Path(__file__).resolve().parents[2]
COLUMNS = ("viewers", "playing", "server_cores", "server_us_per_packet", "fps_min", "fps_p5",
           "fps_avg", "ttff_p50_ms", "ttff_p95_ms", "latency_p50_ms", "latency_p95_ms",
           "first_frame_key", "server_rss_kb_per_viewer", "kbit_per_viewer", "packets_per_s",
           "generator_cores", "publisher_cores")


def start_server(schema: str, port: int, key_dir: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DATABASE_SCHEMA": schema, "REDIS_PREFIX": f"{schema}:",
           "JWT_KEY_DIR": key_dir, "SOUK_ENV": "test", "LOG_LEVEL": "WARNING",
           "WEBRTC_HOST_ADDRESSES": "127.0.0.1", "LOGIN_RATE_PER_ADDRESS": "100000"}
    return subprocess.Popen(  # noqa: S603 - fixed argv: this interpreter running uvicorn
        [sys.executable, "-m", "uvicorn", "--factory", "api.app:create_app", "--host",
         "127.0.0.1", "--port", str(port), "--loop", "uvloop", "--http", "httptools",
         "--no-access-log", "--log-level", "warning"],
        cwd=ROOT, env=env,
    )


async def wait_live(c: httpx.AsyncClient, show: str, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (await c.get(f"/v1/shows/{show}")).json().get("state") == "live":
            return
        await asyncio.sleep(0.2)
    raise SystemExit("the show did not go live: is the publisher connected?")


def planned_seconds(args: argparse.Namespace) -> float:
    per_run = [1.5 + n * args.join_interval + args.warmup + args.seconds + 8 for n in args.viewers]
    return sum(per_run) + 30


async def sweep(args: argparse.Namespace, url: str, server_pid: int, show: str,
                token: str) -> list[dict[str, Any]]:
    publisher = subprocess.Popen(  # noqa: S603, ASYNC220 - our own module, fixed arguments
        [sys.executable, "-m", "streaming.publisher", f"{url}/v1/shows/{show}/whip",
         "--token", token, "--seconds", str(planned_seconds(args)), "--size", args.size,
         "--codec", args.codec], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    rows: list[dict[str, Any]] = []
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10) as c:
            await wait_live(c, show)
        await asyncio.sleep(2)  # the publisher's bitrate settles
        for count in args.viewers:
            if publisher.poll() is not None:
                print(json.dumps({"error": "the publisher stopped", "viewers": count}))
                break
            before = sample(publisher.pid).cpu_s
            started = time.monotonic()
            summary = await asyncio.to_thread(load.run, load.parse_args([
                f"{url}/v1/shows/{show}/whep", "--viewers", str(count),
                "--processes", str(min(args.processes, count)), "--sample", str(args.sample),
                "--join-interval", str(args.join_interval), "--warmup", str(args.warmup),
                "--seconds", str(args.seconds), "--server-pid", str(server_pid),
                *(["--raw", f"{args.raw_dir}/{args.size}-{args.codec}-{count}.json"]
                  if args.raw_dir else [])]))
            if publisher.poll() is None:
                summary["publisher_cores"] = round(
                    (sample(publisher.pid).cpu_s - before) / (time.monotonic() - started), 3)
            summary["size"], summary["codec"] = args.size, args.codec
            print(json.dumps(summary), flush=True)
            rows.append(summary)
            await asyncio.sleep(3)  # the viewers' sessions close
    finally:
        publisher.send_signal(signal.SIGINT)
        try:
            out, _ = publisher.communicate(timeout=20)
            print(out.strip(), flush=True)
        except subprocess.TimeoutExpired:
            publisher.kill()
    return rows


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    dsn, redis_url = os.environ["DATABASE_URL"], os.environ["REDIS_URL"]
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with tempfile.TemporaryDirectory() as key_dir:
        from core.auth import generate_key

        generate_key(Path(key_dir), "bench")
        port = free_port()
        proc = start_server(schema, port, key_dir)
        url = f"http://127.0.0.1:{port}"
        try:
            await wait_ready(url)
            async with httpx.AsyncClient(base_url=url, timeout=10) as c:
                _, seller = await register(c, "seller")
                r = await c.post("/v1/shows", json={"title": "Bench show"}, headers=seller)
                r.raise_for_status()
                show = r.json()["id"]
            token = seller["Authorization"].removeprefix("Bearer ")
            return await sweep(args, url, proc.pid, show, token)
        finally:
            proc.terminate()
            proc.wait(20)
            await drop_schema_and_keys(dsn, redis_url, schema, f"{schema}:")


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(str(row.get(c)) for c in COLUMNS) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.streaming.bench")
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--codec", choices=("vp8", "h264"), default="vp8")
    parser.add_argument("--viewers", type=int, nargs="+", default=[1, 10, 50, 100])
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--sample", type=int, default=2)
    parser.add_argument("--join-interval", type=float, default=0.05)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--raw-dir", help="write each count's per-viewer figures here")
    args = parser.parse_args(argv)
    if any(not 0 < n <= load.MAX_VIEWERS for n in args.viewers) or len(args.viewers) > 10:
        parser.error(f"up to 10 viewer counts, each 1-{load.MAX_VIEWERS}")
    rows = asyncio.run(run(args))
    print(table(rows), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
