"""Show night: the whole load test in one bounded, headless command.

    flock /tmp/souk-bench.lock .venv/bin/python -m loadtests.shownight --seconds 60

Without `--url` it starts one server (`uvicorn --factory api.app:create_app`, the same command
line as the integration tests) on 127.0.0.1 in a fresh PostgreSQL schema and Redis prefix
(from DATABASE_URL / REDIS_URL), creates its admin with `python -m api create-admin`, and drops
the schema and keys afterwards. With `--url` (127.0.0.1 unless another host is named
explicitly) it drives a running deployment; give `--admin-email/--admin-password` for the
invariant checks.

Then: set-up through the public API (loadtests/crowd/setup.py), locust headless for
`--seconds` (`--workers N`: a master and N worker processes), CPU of every process group from
/proc meanwhile, the invariants (loadtests/crowd/invariants.py), and in `--out`: locust's CSV
files and HTML report, `summary.md` (one page), `plan.json`. Exit status 1 when any operation
failed or any invariant broke."""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

import httpx

from loadtests.crowd import invariants, setup
from loadtests.crowd.plan import PLAN_ENV, ROLES, Plan
from loadtests.crowd.procwatch import Watch, pids_named, with_children
from loadtests.crowd.server import ROOT, LocalServer, start_publisher
from loadtests.crowd.summary import (
    Report,
    parse_exceptions,
    parse_failures,
    parse_stats,
    render,
)

LOCUST_START_S = 3.0  # from writing the plan to locust's users starting
CLASSES = {"viewers": "Viewer", "bidders": "Bidder", "chatters": "Chatter",
           "shoppers": "Shopper", "sellers": "Seller", "riders": "Rider", "whep": "WhepViewer"}


def options(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--url", help="a running server (default: start one on 127.0.0.1)")
    p.add_argument("--seconds", type=float, default=60, help="length of the run")
    p.add_argument("--warmup", type=float, default=10, help="users connect; auction opens after")
    p.add_argument("--viewers", type=int, default=300)
    p.add_argument("--bidders", type=int, default=30)
    p.add_argument("--chatters", type=int, default=20)
    p.add_argument("--shoppers", type=int, default=20)
    p.add_argument("--sellers", type=int, default=1)
    p.add_argument("--riders", type=int, default=50)
    p.add_argument("--whep", type=int, default=0, help="WHEP viewers (needs streaming)")
    p.add_argument("--bid-rate", type=float, default=0.1, help="bids/s per bidder")
    p.add_argument("--frenzy-bid-rate", type=float, default=1.0, help="bids/s in the frenzy")
    p.add_argument("--frenzy", type=float, default=10, help="frenzy: seconds before the end")
    p.add_argument("--soft-close", type=int, default=10, help="the hot auction's soft close")
    p.add_argument("--flash-units", type=int, default=5)
    p.add_argument("--flash-at", type=float, default=None, help="s after start (default: half)")
    p.add_argument("--chat-rate", type=float, default=0.1, help="messages/s per chatter")
    p.add_argument("--rider-hz", type=float, default=0.2, help="positions/s per rider")
    p.add_argument("--shopper-pause", type=float, default=8.0, help="s between purchases")
    p.add_argument("--seller-interval", type=float, default=20.0)
    p.add_argument("--delivery-sample", type=float, default=1.0,
                   help="share of pushed messages timed into the statistics")
    p.add_argument("--workers", type=int, default=0, help="locust worker processes (0: one)")
    p.add_argument("--admin-email", default=os.environ.get("SOUK_ADMIN_EMAIL"))
    p.add_argument("--admin-password", default=os.environ.get("SOUK_ADMIN_PASSWORD"))
    p.add_argument("--server-pids", default="", help="with --url: comma-separated pids of the "
                   "server processes (on this machine) whose CPU to read from /proc")
    p.add_argument("--server-root", type=Path, help="start the server from this checkout "
                   "(its .venv) instead of this one — e.g. a branch not merged yet")
    p.add_argument("--out", type=Path, default=Path("shownight-report"))
    p.add_argument("--keep-plan", action="store_true", help="keep plan.json (it holds tokens)")
    args = p.parse_args(argv)
    if args.url and urlparse(args.url).hostname not in ("127.0.0.1", "localhost", "::1"):
        print(f"shownight: targeting {args.url} (named explicitly)", file=sys.stderr)
    if not args.url and not (os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL")):
        p.error("starting a server needs DATABASE_URL and REDIS_URL (or give --url)")
    if args.warmup + args.frenzy + 5 > args.seconds:
        p.error("--seconds must leave room for the warm-up, the auction and its frenzy")
    return args


def counts(args: argparse.Namespace, feats: dict[str, bool]) -> tuple[dict[str, int], list[str]]:
    out = {role: int(getattr(args, role)) for role in ROLES}
    notes = []
    for role, feature in (("riders", "tracking"), ("whep", "whep")):
        if out[role] and not feats.get(feature):
            notes.append(f"{role}: off — the server's /openapi.json has no {feature} routes")
            out[role] = 0
    return out, notes


def make_plan(args: argparse.Namespace, url: str, tag: str, c: httpx.Client,
              notes: list[str]) -> tuple[Plan, setup.House]:
    """Accounts first (the slow part), then the house and its auction, timed from the moment
    locust will start (a few seconds after this returns)."""
    feats = setup.features(c)
    n, off = counts(args, feats)
    notes.extend(off)
    accounts = setup.accounts(c, n, tag)
    started = time.time() + LOCUST_START_S
    duration = int(args.seconds - args.warmup - args.soft_close - 2)
    house = setup.house(c, tag, flash_units=args.flash_units, start_price=1000,
                        auction_opens=started + args.warmup,
                        auction_duration_s=max(5, duration), soft_close_s=args.soft_close)
    return Plan(
        base_url=url, started_at=started, seconds=args.seconds, warmup_s=args.warmup,
        show_id=house.show_id, auction_id=house.auction_id,
        auction_ends_at_ms=house.auction_ends_at_ms, frenzy_s=args.frenzy,
        flash_variant_id=house.flash_variant_id, flash_units=args.flash_units,
        flash_at=started + (args.flash_at if args.flash_at is not None else args.seconds / 2),
        catalog_variant_ids=house.catalog_variant_ids, counts=n, bid_rate=args.bid_rate,
        frenzy_bid_rate=args.frenzy_bid_rate, chat_rate=args.chat_rate, rider_hz=args.rider_hz,
        shopper_pause_s=args.shopper_pause, seller_interval_s=args.seller_interval,
        delivery_sample=args.delivery_sample, workers=max(1, args.workers), features=feats,
        funds=setup.FUNDS, accounts=accounts), house


def locust_commands(args: argparse.Namespace, plan: Plan, out: Path) -> list[list[str]]:
    users = sum(plan.counts.values())
    classes = [CLASSES[r] for r in ROLES if plan.counts.get(r)]
    base = [sys.executable, "-m", "locust", "-f", str(ROOT / "loadtests" / "locustfile.py"),
            "--host", plan.base_url, "--loglevel", "WARNING"]
    head = [*base, "--headless", "-u", str(users), "-r", str(max(1.0, users / args.warmup)),
            "-t", f"{int(args.seconds)}s", "--stop-timeout", "5", "--only-summary",
            "--csv", str(out / "shownight"), "--html", str(out / "shownight.html")]
    if not args.workers:
        return [head + classes]
    port = str(setup_port())
    master = [*head, "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", port,
              "--expect-workers", str(args.workers), *classes]
    worker = [*base, "--worker", "--master-host", "127.0.0.1", "--master-port", port, *classes]
    return [master] + [worker] * args.workers


def setup_port() -> int:
    from loadtests.crowd.server import free_port

    return free_port()


def run_locust(cmds: list[list[str]], plan_path: Path, watch_groups: dict[str, list[int]],
               limit_s: float) -> tuple[int, list[subprocess.Popen[bytes]]]:
    env = {**os.environ, PLAN_ENV: str(plan_path)}
    procs = [subprocess.Popen(cmd, cwd=ROOT, env=env) for cmd in cmds]  # noqa: S603
    watch_groups["locust"] = [p.pid for p in procs]
    try:
        rc = procs[0].wait(limit_s)
    except subprocess.TimeoutExpired:
        rc = -1
    for p in procs:
        if p.poll() is None:
            p.terminate()
            p.wait(10)
    return rc, procs


def login(c: httpx.Client, email: str | None, password: str | None) -> str | None:
    if not email or not password:
        return None
    body = setup.check(c.post("/v1/auth/login", json={"email": email, "password": password}), 200)
    return str(body["access_token"])


def watch_for(groups: dict[str, list[int]]) -> Watch:
    return Watch({
        "server": lambda: groups.get("server", []),
        "locust (with its WHEP helpers)": lambda: with_children(groups.get("locust", [])),
        "WHIP publisher": lambda: groups.get("publisher", []),
        "redis-server (whole machine)": lambda: pids_named("redis-server", "valkey-server"),
        "postgres (whole machine)": lambda: pids_named("postgres"),
    })


def video(args: argparse.Namespace, plan: Plan, house: setup.House, groups: dict[str, list[int]],
          stack: contextlib.ExitStack, notes: list[str]) -> None:
    """Start the show's WHIP publisher when WHEP viewers are wanted; off with a note if not."""
    if not plan.counts.get("whep"):
        return
    proc, trouble = start_publisher(plan.base_url, house.show_id, house.auction_seller.token,
                                    args.seconds + 30)
    stack.callback(lambda: (proc.terminate(), proc.wait(10)))
    groups["publisher"] = [proc.pid]
    if trouble:
        notes.append(f"whep: off — the WHIP publisher did not go live: {trouble}")
        plan.counts["whep"] = 0


def report_for(args: argparse.Namespace, argv: list[str] | None, plan: Plan, out: Path,
               results: list[tuple[str, bool, str]], watch: Watch, rc: int,
               notes: list[str]) -> Report:
    report = Report(
        ops=parse_stats((out / "shownight_stats.csv").read_text()),
        failures=parse_failures((out / "shownight_failures.csv").read_text()),
        exceptions=parse_exceptions((out / "shownight_exceptions.csv").read_text()),
        invariants=results, cpu=watch.table(), notes=notes)
    report.notes.append(f"locust exit status {rc}; {watch.box()}")
    first = watch.first_saturated()
    report.notes.append(f"first to use >90% of a core over 5 s: {first or 'none'}")
    server_s = next((s for who, s, _, _ in report.cpu if who == "server"), None)
    if server_s is not None and report.requests:
        report.notes.append(
            f"server CPU {server_s:.1f} s for {report.requests} requests and commands and "
            f"{report.deliveries} timed deliveries: {1000 * server_s / report.requests:.2f} ms "
            "per request or command, all kinds together (run one role alone for one kind's cost)")
    config = ("users: " + ", ".join(f"{r} {n}" for r, n in plan.counts.items())
              + f"; {args.seconds:g} s, warm-up {args.warmup:g} s, frenzy {args.frenzy:g} s,"
              f" flash {args.flash_units} units; locust workers {args.workers or 'none'}")
    command = shlex.join(["python", "-m", "loadtests.shownight",
                          *(argv if argv is not None else sys.argv[1:])])
    text = render(report, title="Show night", command=command, config=config)
    (out / "summary.md").write_text(text)
    print(text)
    return report


def main(argv: list[str] | None = None) -> int:
    args = options(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    groups: dict[str, list[int]] = {}
    if args.server_pids:
        groups["server"] = [int(pid) for pid in args.server_pids.split(",")]
    with contextlib.ExitStack() as stack:
        url = args.url
        if url is None:
            server = LocalServer(args.seconds, root=args.server_root or ROOT)
            stack.callback(server.stop)
            server.start(out)
            assert server.proc is not None
            url, groups["server"] = server.url, [server.proc.pid]
            args.admin_email, args.admin_password = server.admin_email, server.admin_password
            if args.server_root:
                notes.append(f"server code from {args.server_root}")
        c = stack.enter_context(httpx.Client(base_url=url, timeout=30))
        admin = login(c, args.admin_email, args.admin_password)
        t0 = time.monotonic()
        plan, house = make_plan(args, url, uuid.uuid4().hex[:8], c, notes)
        video(args, plan, house, groups, stack, notes)
        notes.append(f"set-up through the API took {time.monotonic() - t0:.1f} s")
        plan_path = out / "plan.json"
        plan.save(plan_path)
        if not args.keep_plan:
            stack.callback(plan_path.unlink, missing_ok=True)
        watch = watch_for(groups).start()
        rc, _ = run_locust(locust_commands(args, plan, out), plan_path, groups,
                           args.seconds + 60)
        watch.stop()
        results = invariants.run_all(c, admin, house, flash_units=args.flash_units,
                                     close_timeout_s=args.soft_close + 30)
        if args.url:  # someone else's deployment: tidy up (a server we started is dropped)
            notes.extend(f"clean-up: {p}" for p in setup.tidy(c, house))
        report = report_for(args, argv, plan, out, results, watch, rc, notes)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
