"""Commit latency of one small PostgreSQL transaction on this machine (context for the
auction figures): 300 x `BEGIN; UPDATE one row; COMMIT` on one connection, in a scratch
table dropped at the end.

    python -m loadtests.pg_commit_latency
"""

from __future__ import annotations

import asyncio
import os
import time

import asyncpg


async def main() -> None:
    conn = await asyncpg.connect(
        os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS souk_commit_probe (id int PRIMARY KEY, "
                           "v bigint NOT NULL)")
        await conn.execute("INSERT INTO souk_commit_probe VALUES (1, 0) ON CONFLICT DO NOTHING")
        samples = []
        for _ in range(300):
            started = time.perf_counter()
            async with conn.transaction():
                await conn.execute("UPDATE souk_commit_probe SET v = v + 1 WHERE id = 1")
            samples.append((time.perf_counter() - started) * 1000)
        samples.sort()
        print(f"commit ms: p50 {samples[150]:.2f}  p90 {samples[270]:.2f}  "
              f"p99 {samples[297]:.2f}  max {samples[-1]:.2f}")
    finally:
        await conn.execute("DROP TABLE IF EXISTS souk_commit_probe")
        await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
