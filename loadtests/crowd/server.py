"""The server a show night starts for itself: one uvicorn process on 127.0.0.1 with the same
command line as the integration tests, in a fresh PostgreSQL schema and Redis prefix (dropped
afterwards), from this checkout or from another one (`root`, with its own `.venv`), and its
admin made with the documented CLI (`python -m api create-admin`). Also the WHIP publisher a
WHEP run needs."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from core.config import Settings

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # testkit (the test isolation's own schema and key handling)
    sys.path.append(str(ROOT))  # is found from the checkout when it is not installed
LEAN_WS = "realtime.uvicorn_ws:LeanWebSocketsProtocol"
BOUNDED_HTTP = "core.httpserver:BoundedHttpToolsProtocol"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LocalServer:
    seconds: float
    root: Path = ROOT
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    settings: Settings | None = None
    admin_email: str = field(default_factory=lambda: f"admin-{uuid.uuid4().hex[:8]}@shownight.test")
    admin_password: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def python(self) -> str:
        venv = self.root / ".venv" / "bin" / "python"
        return str(venv) if self.root != ROOT and venv.exists() else sys.executable

    def env(self) -> dict[str, str]:
        from core.auth import generate_key
        from testkit.servers import settings_env
        from testkit.services import make_settings

        if self.settings is None:
            key_dir = Path(tempfile.mkdtemp(prefix="shownight-jwt-"))
            generate_key(key_dir, "k1")
            self.settings = make_settings(
                key_dir, database_pool_max=20, access_token_ttl_s=int(self.seconds) + 1800,
                gc_gen0_threshold=10000)
        return {**os.environ, **settings_env(self.settings), "LOG_LEVEL": "WARNING",
                "WEBRTC_HOST_ADDRESSES": "127.0.0.1"}

    def start(self, log_dir: Path, timeout_s: float = 60) -> LocalServer:
        env = self.env()
        with (log_dir / "server.log").open("wb") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - a python running uvicorn
                [self.python, "-m", "uvicorn", "--factory", "api.app:create_app", "--host",
                 "127.0.0.1", "--port", str(self.port), "--loop", "uvloop", "--http",
                 BOUNDED_HTTP, "--ws", LEAN_WS, "--ws-per-message-deflate", "false",
                 "--no-access-log", "--log-level", "warning"],
                cwd=self.root, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited at start: see {log_dir / 'server.log'}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            raise RuntimeError(f"the server was not ready in {timeout_s} s")
        subprocess.run(  # noqa: S603
            [self.python, "-m", "api", "create-admin", "--email", self.admin_email],
            cwd=self.root, env={**env, "SOUK_ADMIN_PASSWORD": self.admin_password},
            check=True, capture_output=True)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.settings is not None:
            from testkit.services import drop_isolation

            asyncio.run(drop_isolation(self.settings))


def start_publisher(url: str, show_id: str, token: str, seconds: float,
                    timeout_s: float = 30) -> tuple[subprocess.Popen[str], str | None]:
    """A WHIP publisher for the show (loadtests/crowd/whep_peer.py); returns it and None once
    it is live, or the reason it is not."""
    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "loadtests.crowd.whep_peer", "publish", "--url", url,
         "--show", show_id, "--token", token, "--seconds", str(seconds)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    first: list[str] = []
    reader = threading.Thread(target=lambda: first.append(proc.stdout.readline()  # type: ignore[union-attr]
                                                          ), daemon=True)
    reader.start()
    reader.join(timeout_s)
    if not first or not first[0]:
        return proc, f"no answer from the WHIP publisher in {timeout_s} s"
    said = json.loads(first[0])
    return proc, None if said.get("event") == "live" else str(said.get("error"))
