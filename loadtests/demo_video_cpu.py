"""CPU of the demo's video: `./scripts/demo` started as a newcomer starts it (a free port on
127.0.0.1, its own schema and Redis prefix), the synthetic publisher and the server each sampled
(utime + stime from /proc) over `--seconds` once the publisher has run `--settle` seconds; then
Ctrl-C (SIGINT, as the test does) and the schema dropped.

    DEMO_VIDEO_SIZE=320x180 DEMO_VIDEO_FPS=10 flock /tmp/souk-bench.lock \
        python -m loadtests.demo_video_cpu [--seconds 30] [--settle 8]

Prints one JSON line. The server's figure includes the demo crowd's traffic (3 simulated
people by default) and relaying the video to no viewer.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from core.auth import generate_key
from loadtests.proc_cpu import cpu_seconds
from testkit.servers import free_port
from testkit.services import drop_schema_and_keys, unique_name

ROOT = Path(__file__).resolve().parents[1]


def session_process(sid: int, marker: str) -> int | None:
    """A process of session `sid` whose command line contains `marker`."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getsid(int(entry.name)) == sid:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                if marker in cmdline:
                    return int(entry.name)
        except (ProcessLookupError, FileNotFoundError):
            pass
    return None


def measure(proc: subprocess.Popen[bytes], seconds: float, settle: float) -> dict[str, float]:
    deadline = time.monotonic() + 120
    publisher = None
    while publisher is None:
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit("no video publisher started within 120 s")
        publisher = session_process(proc.pid, "-m streaming.publisher ")
        time.sleep(0.5)
    server = session_process(proc.pid, "-m api serve")
    assert server is not None
    time.sleep(settle)
    p0, s0, t0 = cpu_seconds(publisher), cpu_seconds(server), time.monotonic()
    time.sleep(seconds)
    p1, s1, t1 = cpu_seconds(publisher), cpu_seconds(server), time.monotonic()
    wall = t1 - t0
    return {"publisher_core_pct": round((p1 - p0) / wall * 100, 1),
            "server_core_pct": round((s1 - s0) / wall * 100, 1), "seconds": round(wall, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--settle", type=float, default=8.0)
    args = parser.parse_args()
    db, rd = os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
    if not db or not rd:
        raise SystemExit("set DATABASE_URL and REDIS_URL (PostgreSQL and Redis on 127.0.0.1)")
    name = unique_name("democpu")
    keys = Path(tempfile.mkdtemp(prefix="souk-democpu-"))
    generate_key(keys, "k1")
    env = {**os.environ, "DATABASE_URL": db, "REDIS_URL": rd, "DATABASE_SCHEMA": name,
           "REDIS_PREFIX": f"{name}:", "JWT_KEY_DIR": str(keys), "HOST": "127.0.0.1",
           "PORT": str(free_port()), "LOG_LEVEL": "WARNING",
           "ENCRYPTION_KEYS": "b1:" + base64.b64encode(os.urandom(32)).decode()}
    proc = subprocess.Popen([str(ROOT / "scripts" / "demo")], cwd=ROOT, env=env,  # noqa: S603
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        figures = measure(proc, args.seconds, args.settle)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
        asyncio.run(drop_schema_and_keys(db, rd, name, f"{name}:"))
        for key in keys.iterdir():
            key.unlink()
        keys.rmdir()
    print(json.dumps({"size": env.get("DEMO_VIDEO_SIZE", "320x180"),
                      "fps": int(env.get("DEMO_VIDEO_FPS", "10")), **figures}))


if __name__ == "__main__":
    main()
