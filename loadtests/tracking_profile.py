"""cProfile of the tracking ingest path alone (no websocket or HTTP), in process: 50 riders,
`--rounds` fixes each through `Ingest.report`; prints the CPU per fix and the top functions.

    flock /tmp/souk-bench.lock env DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python -m loadtests.tracking_profile

Runs in a fresh schema and Redis prefix, dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import tempfile
import time
from pathlib import Path

from asgi_lifespan import LifespanManager

from api.app import create_app
from core.auth import generate_key
from testkit.services import drop_isolation, make_settings
from tracking.model import Fix


async def main(rounds: int, riders_n: int, top: int) -> None:
    key_dir = Path(tempfile.mkdtemp())
    generate_key(key_dir, "k")
    settings = make_settings(key_dir)
    app = create_app(settings)
    try:
        async with LifespanManager(app) as manager:
            tracking, rt = manager._state["tracking"], manager._state["runtime"]
            riders = [await rt.pool.fetchval(
                """INSERT INTO users (email, email_normalized, password_hash, display_name, role)
                   VALUES ($1, $1, 'x', 'bench', 'rider') RETURNING id""", f"r{i}@bench.example")
                for i in range(riders_n)]
            base = int(time.time() * 1000) - 3_600_000

            async def go(first: int, n: int) -> None:
                for k in range(first, first + n):
                    for rider in riders:
                        await tracking.ingest.report(
                            rider, [Fix(52.5 + k * 1e-5, 13.4, base + k * 1000)], "ws")

            await go(0, 2)  # warm: assignments cached, script loaded
            profile = cProfile.Profile()
            cpu = time.process_time()
            profile.enable()
            await go(2, rounds)
            profile.disable()
            cpu = time.process_time() - cpu
            print(f"cpu per fix (profiled): {cpu / (rounds * riders_n) * 1e6:.0f} µs")
            pstats.Stats(profile).sort_stats("tottime").print_stats(top)
    finally:
        await drop_isolation(settings)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--riders", type=int, default=50)
    ap.add_argument("--top", type=int, default=25)
    a = ap.parse_args()
    asyncio.run(main(a.rounds, a.riders, a.top))
