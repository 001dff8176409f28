"""Real clients no one here wrote: headless Chromium publishing (WHIP) and playing (WHEP).

The scenario (browser_scenario.py) runs in a loopback-only network namespace of its own; this
test starts it and checks what it saw. Needs Debian's chromium + chromium-driver (.ci/run
installs them), selenium (dev extras), root for ``unshare -n`` and PostgreSQL's Unix socket.
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

import pytest

from tests.conftest import TIMING_FACTOR

ROOT = Path(__file__).resolve().parents[2]
PG_SOCKET_DIRS = ("/var/run/postgresql", "/run/postgresql", "/tmp")


def missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the browser test: {reason}")
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


@pytest.mark.slow
def test_chromium_publishes_with_whip_and_plays_with_whep() -> None:
    for tool in ("chromium", "chromedriver", "unshare", "ip", "redis-server"):
        if shutil.which(tool) is None:
            missing(f"{tool} is not installed (apt-get install chromium chromium-driver)")
    if os.geteuid() != 0:
        missing("unshare -n needs root here")
    dsn = unix_socket_dsn()
    if dsn is None:
        missing("no PostgreSQL Unix socket for DATABASE_URL")
    done = subprocess.run(
        ["unshare", "-n", sys.executable, "-m", "tests.streaming.browser_scenario"],
        cwd=ROOT, env={**os.environ, "SCENARIO_DATABASE_URL": str(dsn)},
        capture_output=True, text=True, timeout=180 * TIMING_FACTOR, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])

    browsers = seen["chromium_to_chromium"]
    assert browsers["whip"]["status"] == 201 and browsers["whip"]["connection"] == "connected"
    assert browsers["whep"]["status"] == 201 and browsers["whep"]["error"] is None
    assert browsers["whep"]["rendered"] >= 10  # requestVideoFrameCallback fired
    before, after = browsers["decoded_before"], browsers["decoded_after"]
    assert after["framesDecoded"] >= before["framesDecoded"] + 10, browsers  # still playing
    assert (after["width"], after["height"]) == (640, 480)
    assert after["audioPackets"] > before["audioPackets"]
    assert browsers["publisher_encoded"] > 0

    painted = seen["synthetic_to_chromium"]
    assert painted["status"] == 201 and painted["stamps"] >= 90, painted
    assert painted["lastCounter"] > 60  # frames kept coming, read back from the canvas
    assert painted["latency_n"] >= 30 and painted["latency_p50_ms"] < 1000, painted
