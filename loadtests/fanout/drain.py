"""Load-only websocket subscribers in C (drain.c): built with the system's C compiler into
.devdata/ on first use, run as a subprocess that exits by itself. See drain.c."""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
SOURCE = Path(__file__).with_name("drain.c")
BINARY = ROOT / ".devdata" / "drain"


def build() -> Path:
    """The compiled drainer (rebuilt when drain.c is newer)."""
    if BINARY.exists() and BINARY.stat().st_mtime >= SOURCE.stat().st_mtime:
        return BINARY
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise SystemExit("--drain needs a C compiler (cc or gcc)")
    BINARY.parent.mkdir(exist_ok=True)
    subprocess.run([cc, "-O2", "-o", str(BINARY), str(SOURCE)], check=True)  # noqa: S603
    return BINARY


class Drain:
    """`n` load-only subscribers of `channel`, spread over the servers of `ws_urls`."""

    def __init__(self, ws_urls: list[str], n: int, channel: str, *, max_s: float) -> None:
        ports = []
        for url in ws_urls:
            parts = urlsplit(url)
            if parts.hostname not in ("127.0.0.1", "localhost"):
                raise ValueError("the drainer targets 127.0.0.1 only")
            ports.append(str(parts.port))
        self.proc = subprocess.Popen(  # noqa: S603 - our own binary, fixed argv
            [str(build()), ",".join(ports), str(n), channel, str(max_s)],
            stdout=subprocess.PIPE, text=True)

    def wait_ready(self) -> None:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if line != "ready":
            raise SystemExit(f"drain subscribers did not connect: {line!r}")

    def stop(self) -> dict[str, int]:
        """Stop it; its counters (connections, subscribed, bytes, reads, closed)."""
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=30)
        fields = dict(kv.split("=", 1) for kv in out.split())
        return {k: int(v) for k, v in fields.items()}
