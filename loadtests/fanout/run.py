"""Fan-out benchmark runner: N subscribers on one channel, a publisher at a set rate, and the
figures the issue asks for (delivery latency p50/p99/max, delivered publications/s, gaps and
reordering, server CPU and memory per idle connection).

Loopback only, bounded in connections and time, stops by itself. Typical use (server on core 0,
this generator on core 1):

    # the Souk hub, started here (needs DATABASE_URL and REDIS_URL)
    python -m loadtests.fanout.run --start-server hub --subscribers 1000 --rate 270 --publish ws
    # the bare websockets baseline, started here
    python -m loadtests.fanout.run --start-server websockets --subscribers 5000 --rate 20
    # an already running server
    python -m loadtests.fanout.run --url ws://127.0.0.1:8000/v1/ws --server-pid 1234 ...
    # the generator's own ceiling, against the trivial blaster server
    python -m loadtests.fanout.run --start-server blaster --publish ws --burst 50 ...
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

from loadtests.fanout import procstat
from loadtests.fanout.client import Endpoint, Fleet, SocketIOSubscriber, Subscriber
from loadtests.fanout.publishers import PAYLOAD_SIZE, PublishSpec, publish_process, ready
from loadtests.fanout.stats import Recorder, Summary, percentile

ROOT = Path(__file__).resolve().parents[2]
MAX_SUBSCRIBERS = 19_000  # this machine allows 20,000 open files per process
MAX_DURATION_S = 120.0
MAX_RATE = 100_000.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Souk websocket fan-out benchmark (loopback only).")
    p.add_argument("--subscribers", type=int, default=1000)
    p.add_argument("--rate", type=float, default=100.0, help="publications per second")
    p.add_argument("--burst", type=int, default=1,
                   help="publications sent together every burst/rate seconds")
    p.add_argument("--duration", type=float, default=20.0, help="publishing time, seconds")
    p.add_argument("--warmup", type=float, default=2.0,
                   help="seconds at the start excluded from latency percentiles")
    p.add_argument("--drain", type=float, default=10.0,
                   help="max seconds to wait for deliveries after the last publish")
    p.add_argument("--payload-size", type=int, default=PAYLOAD_SIZE)
    p.add_argument("--url", action="append", default=[],
                   help="ws://127.0.0.1:PORT/v1/ws (repeat for several server processes)")
    p.add_argument("--server-pid", type=int, action="append", default=[])
    p.add_argument("--cpu-pin", default="1", help="CPUs for this generator ('' = no pinning)")
    p.add_argument("--start-server", choices=("hub", "websockets", "socketio", "blaster"),
                   default=None)
    p.add_argument("--servers", type=int, default=1, help="server processes to start")
    p.add_argument("--server-cpus", default="0", help="taskset CPU list for started servers")
    p.add_argument("--nice", type=int, default=0,
                   help="niceness for started servers, this generator and the publisher "
                   "(negative needs root; use it when other work shares the machine)")
    p.add_argument("--server-root", default=str(ROOT),
                   help="checkout whose api.app the hub server runs from")
    p.add_argument("--port", type=int, default=18700, help="first port for started servers")
    p.add_argument("--protocol", choices=("souk", "socketio"), default="souk",
                   help="subscriber protocol for --url servers (started ones imply it)")
    p.add_argument("--blaster-format", choices=("array", "frames"), default="array")
    p.add_argument("--channel", default=None, help="default: auction:<uuid> (public read)")
    p.add_argument("--publish", choices=("redis", "ws", "http"), default=None,
                   help="publish path (default: redis for the websockets baseline, else ws)")
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    p.add_argument("--redis-channel", default=None,
                   help="Redis channel for --publish redis (default: bench:fanout:<channel>)")
    p.add_argument("--token", default=os.environ.get("BENCH_TOKEN"),
                   help="bearer token for the publisher (minted for a started hub)")
    p.add_argument("--subscriber-token", default=None,
                   help="bearer token on the subscribers' upgrade (default: anonymous)")
    p.add_argument("--http-url", default=None,
                   help="POST target for --publish http ({channel} is substituted); default for "
                   "a started hub: its admin publish route")
    p.add_argument("--http-body", default='{"data":{data}}',
                   help="request body template: {data} = payload, {channel} = channel name")
    p.add_argument("--http-connections", type=int, default=32,
                   help="keep-alive connections of the HTTP publisher (one request at a time each)")
    p.add_argument("--hub-env", action="append", default=[], metavar="NAME=VALUE",
                   help="extra environment for a started hub (repeatable)")
    p.add_argument("--connect-concurrency", type=int, default=50)
    p.add_argument("--json-out", default=None, help="append the result as one JSON line here")
    p.add_argument("--label", default="")
    args = p.parse_args(argv)
    if not 1 <= args.subscribers <= MAX_SUBSCRIBERS:
        p.error(f"--subscribers must be 1..{MAX_SUBSCRIBERS}")
    if not 0 < args.duration <= MAX_DURATION_S:
        p.error(f"--duration must be in (0, {MAX_DURATION_S}]")
    if not 0 < args.rate <= MAX_RATE:
        p.error(f"--rate must be in (0, {MAX_RATE}]")
    if not 0 <= args.drain <= 60:
        p.error("--drain must be in [0, 60]")
    if not 1 <= args.servers <= 4:
        p.error("--servers must be 1..4")
    if not args.url and args.start_server is None:
        p.error("give --url (and --server-pid) or --start-server")
    return args


# servers ---------------------------------------------------------------------------------------
def server_command(kind: str, port: int, args: argparse.Namespace) -> list[str]:
    py = sys.executable
    if kind == "hub":
        return [py, "-m", "uvicorn", "--factory", "api.app:create_app", "--host", "127.0.0.1",
                "--port", str(port), "--loop", "uvloop", "--http", "httptools",
                "--ws", "realtime.uvicorn_ws:LeanWebSocketsProtocol", "--ws-per-message-deflate",
                "false",
                "--no-access-log", "--log-level", "warning"]
    if kind == "socketio":
        return ["node", str(ROOT / "loadtests/fanout/baseline_socketio/server.js"),
                "--port", str(port), "--redis-url", args.redis_url]
    if kind == "websockets":
        return [py, "-m", "loadtests.fanout.baseline_websockets", "--port", str(port),
                "--redis-url", args.redis_url]
    return [py, "-m", "loadtests.fanout.blaster", "--port", str(port),
            "--format", args.blaster_format]


SOCKETIO_PATH = "/socket.io/?EIO=4&transport=websocket"
BENCH_KEY_DIR = ROOT / ".devdata" / "bench-jwt"


def hub_env(args: argparse.Namespace) -> dict[str, str]:
    """Settings for a hub started by the benchmark: its own schema, Redis prefix and JWT key
    (so an admin token can be minted for the publish route), quiet logs, room for the
    connections. DATABASE_URL and REDIS_URL come from the environment."""
    for name in ("DATABASE_URL", "REDIS_URL"):
        if name not in os.environ:
            raise SystemExit(f"--start-server hub needs {name} in the environment")
    env = {
        "DATABASE_SCHEMA": "bench_fanout",
        "REDIS_PREFIX": "benchfanout:",
        "JWT_KEY_DIR": str(BENCH_KEY_DIR),
        "LOG_LEVEL": "WARNING",
        "WS_MAX_CONNECTIONS": str(MAX_SUBSCRIBERS + 100),
    }
    for item in args.hub_env:
        name, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--hub-env wants NAME=VALUE, got {item!r}")
        env[name] = value
    return env


def mint_admin_token(key_dir: Path) -> str:
    """An access token for a random admin id, signed with the benchmark's own key (the hub
    started here verifies with it). Only for the loopback benchmark."""
    from core.auth import KeyRing, Role, TokenService, generate_key

    if not any(key_dir.glob("*.key")):
        generate_key(key_dir, "bench")
    service = TokenService(KeyRing.load(key_dir), "souk", "souk", 3600)
    return service.issue(uuid.uuid4(), Role.ADMIN)


def start_servers(args: argparse.Namespace, log_dir: Path) -> list[subprocess.Popen[bytes]]:
    kind = args.start_server
    procs = []
    cwd = Path(args.server_root) if kind == "hub" else ROOT
    env = dict(os.environ)
    # The hub runs from --server-root: put it first so its packages win over this checkout's.
    env["PYTHONPATH"] = os.pathsep.join([str(cwd), str(ROOT)])
    if kind == "hub":
        env.update(hub_env(args))
    for i in range(args.servers):
        port = args.port + i
        cmd = ["nice", "-n", str(args.nice), "taskset", "-c", args.server_cpus,
               *server_command(kind, port, args)]
        log = (log_dir / f"fanout-server-{port}.log").open("wb")
        # Fixed argv, no shell: the only inputs are this tool's own validated flags.
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
        procs.append(proc)
        path = {"hub": "/v1/ws", "socketio": SOCKETIO_PATH}.get(kind, "/")
        args.url.append(f"ws://127.0.0.1:{port}{path}")
    for i, proc in enumerate(procs):
        wait_port(args.port + i, proc, timeout_s=90.0)
        args.server_pid.append(proc.pid)
    return procs


def wait_port(port: int, proc: subprocess.Popen[bytes], *, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"server on port {port} did not listen within {timeout_s} s")


def stop_servers(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


# the run ----------------------------------------------------------------------------------------
def publish_spec(args: argparse.Namespace, channel: str) -> PublishSpec:
    defaults = {"websockets": "redis", "socketio": "redis", "hub": "http"}
    default = defaults.get(args.start_server or "", "ws")
    method = args.publish or default
    if method == "http" and args.http_url is None:
        if args.start_server != "hub":
            raise SystemExit("--publish http needs --http-url")
        args.http_url = (f"http://127.0.0.1:{args.port}/v1/admin/channels/{{channel}}"
                         "/publications")
    return PublishSpec(
        method=method, channel=channel, rate=args.rate, burst=args.burst,
        duration_s=args.duration, size=args.payload_size, ws_url=args.url[0], token=args.token,
        redis_url=args.redis_url,
        redis_channel=args.redis_channel or f"bench:fanout:{channel}",
        http_url=args.http_url, http_body=args.http_body, http_connections=args.http_connections,
    )


def log(msg: str) -> None:
    print(f"[fanout {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


async def wait_drained(fleet: Fleet, published: int, timeout_s: float) -> bool:
    """Until every connection has `published` publications (or gave up: closed), or no progress
    for 3 s, or `timeout_s`. True if everything arrived."""
    deadline = time.monotonic() + timeout_s
    last_total, last_change = -1, time.monotonic()
    while time.monotonic() < deadline:
        pending = [t for t in fleet.trackers if t.received < published and t.close_code is None]
        if not pending:
            return True
        total = fleet.recorder.delivered
        if total != last_total:
            last_total, last_change = total, time.monotonic()
        elif time.monotonic() - last_change > 3.0:
            break
        await asyncio.sleep(0.1)
    return all(t.received >= published or t.close_code is not None for t in fleet.trackers)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    channel = args.channel or f"auction:{uuid.uuid4()}"
    pids: list[int] = args.server_pid
    headers = ({"Authorization": f"Bearer {args.subscriber_token}"}
               if args.subscriber_token else {})
    endpoints = [Endpoint(u, headers=headers) for u in args.url]
    recorder = Recorder()
    recorder.recording = False
    socketio = args.start_server == "socketio" or args.protocol == "socketio"
    fleet = Fleet(endpoints, channel, recorder,
                  kind=SocketIOSubscriber if socketio else Subscriber)

    await asyncio.sleep(1.0)
    base = procstat.sample_all(pids) if pids else None
    log(f"opening {args.subscribers} subscribers to {channel} on {args.url}")
    open_s = await fleet.open(args.subscribers, concurrency=args.connect_concurrency,
                              progress=lambda n: log(f"  {n} subscribed"))
    await asyncio.sleep(2.0)
    idle = procstat.sample_all(pids) if pids else None
    log(f"{args.subscribers} subscribed in {open_s:.1f} s")

    loop = asyncio.get_running_loop()
    spec = publish_spec(args, channel)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        await loop.run_in_executor(pool, ready)
        cpu0 = procstat.sample_all(pids) if pids else None
        gen0 = time.process_time()
        mach0 = procstat.machine()
        t0 = time.monotonic()
        loop.call_later(args.warmup, setattr, recorder, "recording", True)
        pub: dict[str, Any] = await loop.run_in_executor(pool, publish_process, spec)
    accepted, refused = int(pub["accepted"]), int(pub["refused"])
    published = accepted if refused else int(pub["sent"])
    drained = await wait_drained(fleet, published, args.drain)
    wall = time.monotonic() - t0
    cpu1 = procstat.sample_all(pids) if pids else None
    gen_cpu = 100.0 * (time.process_time() - gen0) / wall
    cores_busy = procstat.busy_percent(mach0, procstat.machine())
    summary = Summary.of(fleet.trackers, published)  # before we close anything ourselves
    fleet.close()
    await asyncio.sleep(0.5)

    span_s = max(1e-9, (recorder.last_recv_ns - int(pub["started_ns"])) / 1e9)
    hist = recorder.hist
    result: dict[str, Any] = {
        "label": args.label,
        "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "server": args.start_server or "external",
        "servers": len(pids) or len(args.url),
        "nice": args.nice,
        "subscribers": args.subscribers,
        "rate": args.rate,
        "burst": args.burst,
        "duration_s": args.duration,
        "publish_path": pub["path"],
        "sent": pub["sent"],
        "accepted": accepted,
        "refused": refused,
        "publisher_late_ticks": pub["late_ticks"],
        **asdict(summary),
        "offered_per_s": round(args.rate * args.subscribers),
        "delivered_per_s": round(summary.delivered / span_s),
        "latency_ms": {
            "p50": percentile(hist, 0.50),
            "p90": percentile(hist, 0.90),
            "p99": percentile(hist, 0.99),
            "max": percentile(hist, 1.0),
            "samples": sum(hist.values()),
        },
        "drained": drained,
        "untimed": recorder.untimed,
        "loadavg_1m": loadavg(),
        "connect_s": round(open_s, 2),
        "generator_cpu_pct": round(gen_cpu, 1),
        "cores_busy_pct": cores_busy,
        "errors": fleet.errors()[:5],
        "publish_errors": pub["errors"],
        "publisher_timing": pub.get("publisher_timing", {}),
    }
    if args.start_server == "hub":
        result["metrics_files"] = await save_metrics(args)
    if base and idle and cpu0 and cpu1:
        result["server_cpu_pct"] = round(procstat.cpu_percent(cpu0, cpu1, wall), 1)
        result["server_rss_mb"] = round(cpu1.rss / 2**20, 1)
        result["rss_per_idle_conn_kb"] = round((idle.rss - base.rss) / args.subscribers / 1024, 1)
    return result


async def save_metrics(args: argparse.Namespace) -> list[str]:
    """Keep each started hub's /metrics text (fan-out duration, pub/sub lag...) for diagnosis."""
    import httpx

    saved = []
    async with httpx.AsyncClient(timeout=10.0) as client:
        for i in range(args.servers):
            port = args.port + i
            try:
                r = await client.get(f"http://127.0.0.1:{port}/metrics")
            except httpx.HTTPError:
                continue
            path = ROOT / ".devdata" / f"fanout-metrics-{port}.txt"
            path.write_text(r.text)
            saved.append(str(path))
    return saved


def loadavg() -> float:
    """The machine's 1-minute load average (other work shares these 2 cores)."""
    return float(Path("/proc/loadavg").read_text().split()[0])


def human(r: dict[str, Any]) -> str:
    lat = r["latency_ms"]
    lines = [
        f"{r['server']} x{r['servers']}  subscribers={r['subscribers']}  rate={r['rate']}/s "
        f"burst={r['burst']}  path={r['publish_path']}",
        f"  delivered/s={r['delivered_per_s']:,} (offered {r['offered_per_s']:,})  "
        f"latency p50={lat['p50']:.1f} p90={lat['p90']:.1f} p99={lat['p99']:.1f} "
        f"max={lat['max']:.1f} ms",
        f"  published={r['published']} delivered={r['delivered']:,} missing={r['missing']} "
        f"gaps={r['gaps']} reorders={r['reorders']} closed={r['closed']} refused={r['refused']}"
        + ("" if r["drained"] else "  (NOT drained: server fell behind; missing = backlog)"),
        f"  publisher timing (ms): {r['publisher_timing']}",
        f"  generator cpu={r['generator_cpu_pct']}%  loadavg={r['loadavg_1m']}  "
        f"cores busy (all processes)={r['cores_busy_pct']}",
    ]
    if "server_cpu_pct" in r:
        lines[-1] += (f"  server cpu={r['server_cpu_pct']}%  rss={r['server_rss_mb']} MB  "
                      f"rss/idle conn={r['rss_per_idle_conn_kb']} KB")
    return "\n".join(lines)


def pin(cpus: str) -> None:
    if cpus:
        os.sched_setaffinity(0, {int(c) for c in cpus.split(",")})


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    pin(args.cpu_pin)
    log_dir = ROOT / ".devdata"
    log_dir.mkdir(exist_ok=True)
    if args.start_server == "hub" and args.token is None:
        BENCH_KEY_DIR.parent.mkdir(exist_ok=True)
        args.token = mint_admin_token(BENCH_KEY_DIR)
    procs = start_servers(args, log_dir) if args.start_server else []
    if args.nice:  # after starting the servers: `nice -n` is relative to our own niceness
        os.setpriority(os.PRIO_PROCESS, 0, args.nice)  # the publisher process inherits it
    try:
        import uvloop

        result = uvloop.run(run(args))
    finally:
        stop_servers(procs)
    print(human(result))
    print(json.dumps(result))
    if args.json_out:
        with contextlib.suppress(OSError), open(args.json_out, "a") as fh:
            fh.write(json.dumps(result) + "\n")
    return 0 if result["missing"] == result["gaps"] == result["reorders"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
