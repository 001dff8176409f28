"""Command line: `python -m api <command>` (or the `souk` console script).

Commands: serve, migrate, create-admin, seed-demo, keygen. Settings come from the environment
exactly as for the server.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import asyncpg

from core.config import Settings, SettingsError


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        sys.exit(f"souk: {exc}")


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from realtime.uvicorn_ws import LEAN_WS

    _settings()  # fail before uvicorn starts if the environment is wrong
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        http="httptools",
        ws=LEAN_WS,  # uvicorn's websockets-sansio with lighter per-connection state
        ws_per_message_deflate=False,  # frames are built once for every subscriber
        proxy_headers=True,
        forwarded_allow_ips=args.forwarded_allow_ips,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=args.graceful_s,
    )
    return 0


async def _migrate(settings: Settings) -> list[int]:
    from core.db import migrate_dsn

    return await migrate_dsn(settings.database_url, schema=settings.database_schema)


def cmd_migrate(args: argparse.Namespace) -> int:
    applied = asyncio.run(_migrate(_settings()))
    print(f"applied migrations: {applied or 'none pending'}")
    return 0


async def _with_pool(settings: Settings, job: object) -> object:
    from core.db import create_pool

    await _migrate(settings)
    pool = await create_pool(settings.database_url, schema=settings.database_schema, min_size=1)
    try:
        return await job(pool)  # type: ignore[operator]
    finally:
        await pool.close()


def cmd_create_admin(args: argparse.Namespace) -> int:
    from api.accounts import store
    from api.accounts.passwords import hash_password
    from api.accounts.rules import PASSWORD_MIN, normalize_email
    from core.auth import Role

    password = os.environ.get("SOUK_ADMIN_PASSWORD") or getpass.getpass("Admin password: ")
    if len(password) < PASSWORD_MIN:
        sys.exit(f"souk: the password must be at least {PASSWORD_MIN} characters")

    async def job(pool: asyncpg.Pool) -> object:
        return await store.create_user(
            pool,
            email=args.email,
            email_normalized=normalize_email(args.email),
            password_hash=await hash_password(password),
            display_name=args.display_name,
            role=Role.ADMIN,
        )

    try:
        user = asyncio.run(_with_pool(_settings(), job))
    except store.EmailTaken:
        sys.exit(f"souk: {args.email} is already registered")
    print(f"admin created: {user.id}")  # type: ignore[attr-defined]
    return 0


def cmd_seed_demo(args: argparse.Namespace) -> int:
    from api import demo

    users = asyncio.run(_with_pool(_settings(), demo.seed))
    print(f"demo users (password: {demo.DEMO_PASSWORD}):")
    for role in ("admin", "seller", "buyer", "rider"):
        user = getattr(users, role)
        print(f"  {role:7} {user.email}")
    return 0


def cmd_keygen(args: argparse.Namespace) -> int:
    from core.auth import generate_key

    directory = Path(args.dir or os.environ.get("JWT_KEY_DIR") or ".devdata/jwt")
    if args.if_missing and any(directory.glob("*.key")):
        return 0
    path = generate_key(directory, args.kid)
    print(f"wrote {path}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="souk", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the HTTP/websocket server")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--workers", type=int, default=1)
    s.add_argument("--forwarded-allow-ips", default="127.0.0.1")
    s.add_argument("--graceful-s", type=int, default=10)
    s.set_defaults(fn=cmd_serve)
    sub.add_parser("migrate", help="apply pending database migrations").set_defaults(fn=cmd_migrate)
    a = sub.add_parser(
        "create-admin", help="create an admin (password from SOUK_ADMIN_PASSWORD or a prompt)"
    )
    a.add_argument("--email", required=True)
    a.add_argument("--display-name", default="Admin")
    a.set_defaults(fn=cmd_create_admin)
    sub.add_parser("seed-demo", help="load the demo data set (idempotent)").set_defaults(
        fn=cmd_seed_demo
    )
    k = sub.add_parser("keygen", help="write a new Ed25519 JWT signing key")
    k.add_argument("--dir", help="key directory (default: $JWT_KEY_DIR or .devdata/jwt)")
    k.add_argument("--kid", default="k1")
    k.add_argument("--if-missing", action="store_true", help="do nothing if a key exists")
    k.set_defaults(fn=cmd_keygen)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    code: int = args.fn(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
