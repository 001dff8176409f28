"""A bounded show night against a real server (started by the command itself on 127.0.0.1, in
its own schema and Redis prefix): a few users of every role for a few seconds. It fails when any
operation errors or any invariant breaks (the command's exit status and its summary), and
checks that every role the server can serve did its work. Riders and WHEP viewers switch
themselves off, with a note, on a server without tracking or streaming routes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from loadtests.crowd.summary import parse_stats
from tests.support.servers import ROOT
from tests.support.services import service_urls

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SIGNS = {  # role → an operation only that role performs
    "viewers": ("WS", "ping"),
    "bidders": ("WS", "bid (frenzy)"),
    "chatters": ("WS", "publish chat"),
    "shoppers": ("POST", "POST /v1/checkout"),
    "sellers": ("POST", "POST /v1/auctions"),
    "riders": ("GET", "GET /v1/tracking/osmand"),
    "whep": ("WHEP", "connect"),
}


def test_show_night_smoke(tmp_path: Path) -> None:
    service_urls()
    out = tmp_path / "report"
    cmd = [sys.executable, "-m", "loadtests.shownight", "--seconds", "12", "--warmup", "3",
           "--frenzy", "4", "--soft-close", "3", "--viewers", "4", "--bidders", "3",
           "--chatters", "2", "--chat-rate", "0.15", "--shoppers", "4", "--shopper-pause", "3",
           "--sellers", "1", "--seller-interval", "4", "--riders", "2", "--whep", "1",
           "--flash-units", "2", "--out", str(out)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240,
                          check=False)
    summary = (out / "summary.md").read_text() if (out / "summary.md").exists() else ""
    assert done.returncode == 0, f"{summary}\n{done.stderr[-4000:]}"
    assert "**PASS**" in summary
    for name in ("auction closed with one winner", "no oversell", "ledger balanced"):
        assert f"ok  {name}" in summary
    ops = {(o.kind, o.name): o for o in parse_stats((out / "shownight_stats.csv").read_text())}
    for role, sign in SIGNS.items():
        off = f"{role}: off" in summary
        assert off or sign in ops, f"{role} did nothing:\n{summary}"
        if not off:
            assert ops[sign].count > 0
    assert ops[("PUSH", "auction bid→watcher")].count > 0
    assert ops[("PUSH", "show chat chat")].count > 0
    assert (out / "shownight.html").stat().st_size > 0
    assert not (out / "plan.json").exists()  # it held tokens
