"""What the periodic re-check of live websocket tokens costs (realtime/revocation.py).

Times `core.context.revoked_among` over 10,000 principals in batches of 500 (as the re-check
does) against the Redis at REDIS_URL, and reports wall time and this process's CPU per pass.

    flock /tmp/souk-bench.lock python -m loadtests.revocation_recheck
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from typing import Any

import redis.asyncio as aioredis

from core.auth import Principal, Role
from core.context import Runtime, revoked_among
from core.redis_client import Keys
from realtime.revocation import RECHECK_BATCH

CONNECTIONS = 10_000
PASSES = 5


async def main() -> None:
    redis = aioredis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    unused: Any = None  # the re-check reads Redis only
    rt = Runtime(settings=unused, pool=unused, redis=redis, tokens=unused, metrics=unused,
                 limiter=unused, keys=Keys(f"bench-recheck-{uuid.uuid4().hex[:8]}:"))
    principals = [Principal(uuid.uuid4(), Role.BUYER, uuid.uuid4().hex, 2**31, uuid.uuid4().hex)
                  for _ in range(CONNECTIONS)]
    await revoked_among(rt, principals[:RECHECK_BATCH])  # warm the connection
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(PASSES):
        for start in range(0, CONNECTIONS, RECHECK_BATCH):
            await revoked_among(rt, principals[start:start + RECHECK_BATCH])
    wall, cpu = (time.perf_counter() - wall) / PASSES, (time.process_time() - cpu) / PASSES
    print(f"{CONNECTIONS:,} connections per pass: wall {wall * 1000:.0f} ms, "
          f"server-process CPU {cpu * 1000:.0f} ms "
          f"({cpu / CONNECTIONS * 1e6:.1f} us per connection)")
    await redis.aclose()


if __name__ == "__main__":
    asyncio.run(main())
