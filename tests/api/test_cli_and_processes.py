"""The command line and real server processes starting together."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import httpx

from core.config import Settings
from tests.support.servers import ROOT, ServerProcess, settings_env


def cli(settings: Settings, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **settings_env(settings), **extra_env}
    return subprocess.run(
        [sys.executable, "-m", "api", *args], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )


async def test_migrate_seed_demo_and_create_admin(settings: Settings) -> None:
    out = cli(settings, "migrate")
    assert out.returncode == 0, out.stderr
    assert "applied migrations: [1, 2, 3" in out.stdout
    assert "none pending" in cli(settings, "migrate").stdout
    for _ in range(2):  # idempotent
        out = cli(settings, "seed-demo")
        assert out.returncode == 0, out.stderr
        assert "buyer@demo.souk.dev" in out.stdout
    out = cli(settings, "create-admin", "--email", "ops@example.com",
              SOUK_ADMIN_PASSWORD="a very long admin password")
    assert out.returncode == 0, out.stderr
    out = cli(settings, "create-admin", "--email", "ops@example.com",
              SOUK_ADMIN_PASSWORD="a very long admin password")
    assert out.returncode != 0 and "already registered" in out.stderr
    out = cli(settings, "create-admin", "--email", "x@example.com", SOUK_ADMIN_PASSWORD="short")
    assert out.returncode != 0
    conn = await asyncpg.connect(settings.database_url,
                                 server_settings={"search_path": settings.database_schema})
    try:
        roles = await conn.fetch("SELECT role, count(*) FROM users GROUP BY role ORDER BY role")
        assert {r["role"]: r["count"] for r in roles} == {
            "admin": 2, "buyer": 1, "rider": 1, "seller": 1}
        # The demo show has exactly one live auction (open at once), however often seed-demo runs.
        live = await conn.fetch("SELECT state, show_id FROM auctions")
        assert [r["state"] for r in live] == ["open"]
        assert live[0]["show_id"] is not None
        assert await conn.fetchval("SELECT count(*) FROM products") >= 1
        wallet = await conn.fetchval("SELECT count(*) FROM ledger_transfers")
        assert wallet >= 1  # the demo buyer's top-up
    finally:
        await conn.close()


def test_bad_settings_fail_loudly(settings: Settings) -> None:
    out = cli(settings, "migrate", DATABASE_URL="mysql://nope", ACCESS_TOKEN_TTL_S="1")
    assert out.returncode != 0
    assert "DATABASE_URL" in out.stderr and "ACCESS_TOKEN_TTL_S" in out.stderr


def test_keygen(tmp_path: Path) -> None:
    run = [sys.executable, "-m", "api", "keygen", "--dir", str(tmp_path), "--kid", "k7"]
    assert subprocess.run(run, cwd=ROOT, check=False).returncode == 0
    assert (tmp_path / "k7.key").stat().st_mode & 0o077 == 0  # private key is owner-only
    again = subprocess.run([*run, "--if-missing"], cwd=ROOT, check=False)
    assert again.returncode == 0


def test_three_processes_start_together_on_a_fresh_schema(
    settings: Settings, tmp_path: Path
) -> None:
    procs = [ServerProcess(settings) for _ in range(3)]
    try:
        with ThreadPoolExecutor(3) as pool:
            list(pool.map(lambda p: p.start(log_dir=tmp_path, timeout_s=60), procs))
        for p in procs:
            assert httpx.get(p.url + "/readyz").status_code == 200
        # An account made through one process signs in through another.
        body = {"email": "multi@example.com", "password": "correct horse battery",
                "display_name": "M"}
        assert httpx.post(procs[0].url + "/v1/auth/register", json=body).status_code == 201
        r = httpx.post(procs[2].url + "/v1/auth/login",
                       json={"email": body["email"], "password": body["password"]})
        assert r.status_code == 200
        me = httpx.get(procs[1].url + "/v1/me",
                       headers={"authorization": f"Bearer {r.json()['access_token']}"})
        assert me.json()["email"] == "multi@example.com"
    finally:
        for p in procs:
            p.stop()
