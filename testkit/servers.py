"""Real uvicorn server processes for integration tests (several processes share one schema and
Redis prefix, forming one deployment)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from core.config import Settings
from core.httpserver import BOUNDED_HTTP
from realtime.uvicorn_ws import LEAN_WS

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a server process read exactly `settings`."""
    s = settings
    env = {
        "DATABASE_URL": s.database_url,
        "REDIS_URL": s.redis_url,
        "JWT_KEY_DIR": str(s.jwt_key_dir),
        "SOUK_ENV": s.env,
        "DATABASE_SCHEMA": s.database_schema,
        "DATABASE_POOL_MIN": str(s.database_pool_min),
        "DATABASE_POOL_MAX": str(s.database_pool_max),
        "REDIS_PREFIX": s.redis_prefix,
        "MIGRATE_ON_START": "true" if s.migrate_on_start else "false",
        "PAYMENT_PROVIDER": s.payment_provider,
        "LOG_LEVEL": s.log_level,
        "LOG_JSON": "true",
        "GC_GEN0_THRESHOLD": str(s.gc_gen0_threshold),
        "ACCESS_TOKEN_TTL_S": str(s.access_token_ttl_s),
        "LOGIN_RATE_PER_ACCOUNT": str(s.login_rate_per_account),
        "LOGIN_RATE_PER_ADDRESS": str(s.login_rate_per_address),
        "LOGIN_FAILURES_PER_ADDRESS": str(s.login_failures_per_address),
        "REGISTER_RATE_PER_ADDRESS": str(s.register_rate_per_address),
        "AUCTION_CLOSER": "true" if s.auction_closer else "false",
        "RESERVATION_TTL_S": str(s.reservation_ttl_s),
        "RESERVATION_SWEEP_INTERVAL_S": str(s.reservation_sweep_interval_s),
        "SETTLEMENT_HOLD_S": str(s.settlement_hold_s),
        "SETTLEMENT_INTERVAL_S": str(s.settlement_interval_s),
    }
    if s.jwt_active_kid:
        env["JWT_ACTIVE_KID"] = s.jwt_active_kid
    if s.encryption_keys:
        env["ENCRYPTION_KEYS"] = ",".join(f"{k}:{v}" for k, v in s.encryption_keys.items())
    if s.metrics_token:
        env["METRICS_TOKEN"] = s.metrics_token
    if s.encryption_active_kid:
        env["ENCRYPTION_ACTIVE_KID"] = s.encryption_active_kid
    env["PLATFORM_FEE_BPS"] = str(s.platform_fee_bps)
    env["SETTLEMENT_HOLD_S"] = str(s.settlement_hold_s)
    env["SETTLEMENT_INTERVAL_S"] = str(s.settlement_interval_s)
    return env


@dataclass
class ServerProcess:
    """One `uvicorn --factory api.app:create_app` child process on a free loopback port."""

    settings: Settings
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    cli: bool = False  # start through `python -m api serve` (the production entry point)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self, *, log_dir: Path, timeout_s: float = 30.0) -> ServerProcess:
        env = {**os.environ, **settings_env(self.settings), **self.extra_env}
        self.log_path = log_dir / f"server-{self.port}.log"
        with self.log_path.open("wb") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "api", "serve", "--host", "127.0.0.1",
                 "--port", str(self.port)] if self.cli else [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "--factory",
                    "api.app:create_app",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--loop",
                    "uvloop",
                    "--http",
                    BOUNDED_HTTP,  # httptools with bounded request headers
                    "--ws",
                    LEAN_WS,
                    "--ws-per-message-deflate",
                    "false",
                    "--no-access-log",
                    "--no-proxy-headers",  # as `python -m api serve` without TRUSTED_PROXIES
                    "--log-level",
                    "warning",
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_path.read_text()[-4000:]}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"server not ready in {timeout_s}s:\n{self.log_path.read_text()[-4000:]}"
        )

    def kill(self) -> None:
        """SIGKILL: the process dies without any cleanup (crash test)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
