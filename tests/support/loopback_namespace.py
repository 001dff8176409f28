"""Run a browser scenario in a loopback-only network namespace and return what it saw.

Chromium has no switch to gather WebRTC candidates on 127.0.0.1 only, so the scenarios that
put Chromium on a WebRTC call (tests/streaming/browser_scenario.py, tests/web/video_scenario.py)
run under ``unshare -n``: a namespace whose only interface is its own loopback. They start their
own Redis and server inside and reach PostgreSQL through its Unix socket. Needs Debian's
chromium + chromium-driver (.ci/run installs them), ``unshare``/``ip``, redis-server and root.
With CI=true a missing piece fails the test; elsewhere it skips with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PG_SOCKET_DIRS = ("/var/run/postgresql", "/run/postgresql", "/tmp")
TOOLS = ("chromium", "chromedriver", "unshare", "ip", "redis-server")


def missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the browser tests: {reason}")
    pytest.skip(reason)


def unix_socket_dsn() -> str | None:
    """DATABASE_URL through PostgreSQL's Unix socket (no TCP inside the namespace)."""
    url = urllib.parse.urlsplit(os.environ.get("DATABASE_URL", ""))
    if url.hostname not in ("127.0.0.1", "localhost"):
        return None
    port = url.port or 5432
    for directory in PG_SOCKET_DIRS:
        if Path(directory, f".s.PGSQL.{port}").exists():
            user = f"{url.username}@" if url.username else ""
            query = f"host={directory}&port={port}"
            return f"postgresql://{user}{url.path}?{query}".replace("://@", "://")
    return None


def run_scenario(module: str, timeout_s: float) -> dict[str, Any]:
    """`python -m module` in its own loopback-only namespace; its last stdout line (JSON)."""
    for tool in TOOLS:
        if shutil.which(tool) is None:
            missing(f"{tool} is not installed (apt-get install chromium chromium-driver)")
    if os.geteuid() != 0:
        missing("unshare -n needs root here")
    dsn = unix_socket_dsn()
    if dsn is None:
        missing("no PostgreSQL Unix socket for DATABASE_URL")
    done = subprocess.run(
        ["unshare", "-n", sys.executable, "-m", module],
        cwd=ROOT, env={**os.environ, "SCENARIO_DATABASE_URL": str(dsn)},
        capture_output=True, text=True, timeout=timeout_s, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    seen: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return seen
