"""Command line: `python -m api <command>` (or the `souk` console script).

Commands: serve, migrate, create-admin, seed-demo, keygen and demo-reset take their settings from
the environment exactly as the server does. The clients of a running server — watch, bid,
demo-crowd, demo-show — need none: they use its public API (`--url`, default `$SOUK` or
http://127.0.0.1:8000).
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

    from core.httpserver import BOUNDED_HTTP
    from realtime.uvicorn_ws import LEAN_WS

    settings = _settings()  # fail before uvicorn starts if the environment is wrong
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        http=BOUNDED_HTTP,  # httptools with bounded request headers (size, count, time)
        ws=LEAN_WS,  # uvicorn's websockets-sansio with lighter per-connection state
        ws_per_message_deflate=False,  # frames are built once for every subscriber
        # X-Forwarded-For/-Proto are believed only from TRUSTED_PROXIES (none by default):
        # otherwise any client could pick the address its rate limits are counted under.
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=list(settings.trusted_proxies) or None,
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
    from core.db import close_pool, create_pool

    await _migrate(settings)
    pool = await create_pool(settings.database_url, schema=settings.database_schema, min_size=1)
    try:
        return await job(pool)  # type: ignore[operator]
    finally:
        await close_pool(pool)


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


def cmd_demo_reset(args: argparse.Namespace) -> int:
    from api import demo, demo_reset

    settings = _settings()
    if not args.yes:
        if not sys.stdin.isatty():
            sys.exit("souk: demo-reset deletes every row and key of this deployment: add --yes")
        where = f"schema {settings.database_schema!r}, Redis keys {settings.redis_prefix!r}*"
        if input(f"Delete everything in {where} and reload the demo? [y/N] ").lower() != "y":
            return 1
    try:
        deleted = asyncio.run(demo_reset.wipe(settings))
    except demo_reset.ResetRefused as exc:
        sys.exit(f"souk: {exc}")
    asyncio.run(_with_pool(settings, demo.seed))
    print(f"demo reset: schema {settings.database_schema!r} recreated, {deleted} Redis keys "
          "deleted, demo data loaded")
    return 0


def cmd_demo_crowd(args: argparse.Namespace) -> int:
    import signal

    from api.demo_crowd import CrowdSettings, run

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        settings = CrowdSettings(url=_url(args), bots=args.bots, auction_s=args.auction_s)
        await run(settings, stop, seed=args.seed)

    asyncio.run(main())
    return 0


def cmd_demo_show(args: argparse.Namespace) -> int:
    from api.demo_crowd import SELLER_EMAIL, Account, ensure_live_show, wait_ready
    from api.demo_terminal import run

    async def show() -> int:
        seller = Account(_url(args), SELLER_EMAIL)
        await wait_ready(seller.url, 120)
        show_id = await ensure_live_show(seller)
        print(show_id, await seller.token())
        return 0

    return run(show())


def cmd_watch(args: argparse.Namespace) -> int:
    from api.demo_terminal import Target, run, watch

    target = Target.of(args.url, args.token, args.email)
    return run(watch(target, args.channel, count=args.count, seconds=args.seconds))


def cmd_bid(args: argparse.Namespace) -> int:
    from api.demo_terminal import Target, bid, run

    amount = args.amount
    if not (amount.removeprefix("+").isdigit()):
        sys.exit("souk: the amount is a whole number of cents (1500) or +N above the minimum")
    return run(bid(Target.of(args.url, args.token, args.email), args.auction, amount))


def _url(args: argparse.Namespace) -> str:
    from api.demo_terminal import Target

    return Target.of(args.url, None, None).url


def _client_options(p: argparse.ArgumentParser, *, sign_in: bool) -> None:
    p.add_argument("--url", help="the server (default: $SOUK or http://127.0.0.1:8000)")
    if sign_in:
        p.add_argument("--token", help="an access token (default: $SOUK_TOKEN)")
        p.add_argument("--email", help="sign in as this user (password: $SOUK_PASSWORD or a "
                       "prompt)")


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
    r = sub.add_parser("demo-reset", help="put the demo back to its first state: drop the "
                       "schema and Redis keys, migrate, load the demo data (not with "
                       "SOUK_ENV=prod)")
    r.add_argument("--yes", action="store_true", help="do not ask")
    r.set_defaults(fn=cmd_demo_reset)
    c = sub.add_parser("demo-crowd", help="keep a running demo alive: its show live, an auction "
                       "open, a few simulated bidders and chatters (until Ctrl-C)")
    _client_options(c, sign_in=False)
    c.add_argument("--bots", type=int, default=3, choices=range(0, 7), metavar="0-6")
    c.add_argument("--auction-s", type=int, default=120, help="each auction's duration")
    c.add_argument("--seed", type=int, help="make the simulation repeatable")
    c.set_defaults(fn=cmd_demo_crowd)
    d = sub.add_parser("demo-show", help="put the demo show live; print its id and a demo "
                       "seller access token (for a video publisher)")
    _client_options(d, sign_in=False)
    d.set_defaults(fn=cmd_demo_show)
    w = sub.add_parser("watch", help="print a channel's events (auction:<id>, show:<id>, "
                       "show:<id>:chat, ...) as they come")
    w.add_argument("channel")
    _client_options(w, sign_in=True)
    w.add_argument("--count", type=int, help="stop after this many events")
    w.add_argument("--seconds", type=float, help="stop after this many seconds")
    w.set_defaults(fn=cmd_watch)
    b = sub.add_parser("bid", help="bid on an auction: AMOUNT in cents (your maximum), or +N "
                       "above the next minimum bid")
    b.add_argument("auction")
    b.add_argument("amount")
    _client_options(b, sign_in=True)
    b.set_defaults(fn=cmd_bid)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    code: int = args.fn(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
