"""The show page plays a live show fed by a test publisher (streaming.publisher over WHIP) in
headless Chromium through WHEP, and the buyer bids, leads and sees being outbid within a second;
then the seller's studio goes live from Chromium's fake camera through WHIP and the buyer plays it.
The scenario (video_scenario.py) runs in a loopback-only network namespace, like
tests/streaming/test_browser.py, whose requirements it shares (root for ``unshare -n``,
PostgreSQL's Unix socket, redis-server, chromium + chromium-driver)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import TIMING_FACTOR
from tests.streaming.test_browser import unix_socket_dsn
from tests.web.conftest import ROOT, missing


@pytest.mark.slow
def test_buyer_watches_a_published_show_bids_and_is_outbid() -> None:
    for tool in ("chromium", "chromedriver", "unshare", "ip", "redis-server"):
        if shutil.which(tool) is None:
            missing(f"{tool} is not installed")
    if os.geteuid() != 0:
        missing("unshare -n needs root here")
    dsn = unix_socket_dsn()
    if dsn is None:
        missing("no PostgreSQL Unix socket for DATABASE_URL")
    done = subprocess.run(
        ["unshare", "-n", sys.executable, "-m", "tests.web.video_scenario"],
        cwd=ROOT, env={**os.environ, "SCENARIO_DATABASE_URL": str(dsn)},
        capture_output=True, text=True, timeout=150 * TIMING_FACTOR, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    width, t1 = seen["video_before"]
    _, t2 = seen["video_after"]
    assert width > 0, seen
    assert t2 > t1, seen  # still playing
    assert seen["video_status"] == "connected", seen
    assert seen["leader"] == "Rival"
    assert seen["outbid_seen_s"] < 1.0 * TIMING_FACTOR, seen
    # The studio: the seller went live from the browser's camera (WHIP), a buyer watched it.
    assert seen["camera"]["show_live"] is True
    assert seen["camera"]["viewer_width"] > 0, seen
