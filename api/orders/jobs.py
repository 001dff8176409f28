"""Commerce background jobs: reservation expiry and seller settlement.

Both are safe with any number of processes running them at once: candidates are read without
locks, then each order is handled in its own transaction that first takes the order row with
`FOR UPDATE SKIP LOCKED` and re-checks the condition (another process holding or having
finished it is skipped), and every state write is conditional. One order's failure is logged,
counted and retried on a later pass; it never stops the loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

import asyncpg

from api.orders import service, store
from api.orders.machine import Actor, OrderState
from api.orders.metrics import CommerceMetrics

log = logging.getLogger("souk.commerce.jobs")

EXPIRY = "reservation_expiry"
SETTLEMENT = "settlement"


async def expire_reservations(
    pool: asyncpg.Pool, metrics: CommerceMetrics, *, batch: int
) -> int:
    """Cancel pending orders whose reservation expired: the stock and the wallet hold are
    released. Returns how many orders this pass cancelled."""
    done = 0
    for order_id in await store.expired_reservations(pool, batch):
        outcome = await _one(pool, order_id, _expire)
        metrics.job_items.labels(EXPIRY, outcome).inc()
        done += outcome == "done"
    return done


async def _expire(conn: asyncpg.Connection, order_id: uuid.UUID) -> bool:
    if not await store.lock_if(
        conn, order_id, "state = 'pending_payment' AND reserved_until <= now()"
    ):
        return False
    await service.transition(
        conn, order_id, OrderState.CANCELLED, by=service.By(Actor.SYSTEM, None, "system"),
        reason="reservation_expired",
    )
    return True


async def settle_delivered(
    pool: asyncpg.Pool, metrics: CommerceMetrics, *, hold_s: int, fee_bps: int, batch: int
) -> int:
    """Settle delivered orders whose holding period passed. Returns how many were settled."""
    done = 0

    async def settle(conn: asyncpg.Connection, order_id: uuid.UUID) -> bool:
        condition = (
            "state = 'delivered' AND settled_at IS NULL AND delivered_at <= now() - "
            f"make_interval(secs => {int(hold_s)})"
        )
        if not await store.lock_if(conn, order_id, condition):
            return False
        return await service.settle(conn, order_id, fee_bps=fee_bps)

    for order_id in await store.due_settlements(pool, hold_s, batch):
        outcome = await _one(pool, order_id, settle)
        metrics.job_items.labels(SETTLEMENT, outcome).inc()
        done += outcome == "done"
    return done


async def _one(
    pool: asyncpg.Pool,
    order_id: uuid.UUID,
    work: Callable[[asyncpg.Connection, uuid.UUID], Awaitable[bool]],
) -> str:
    try:
        async with pool.acquire() as conn, conn.transaction():
            return "done" if await work(conn, order_id) else "skipped"
    except Exception:  # one bad order must not block the others; it is retried next pass
        log.exception("commerce job failed on an order", extra={"order_id": str(order_id)})
        return "failed"


async def run_periodically(
    name: str,
    interval_s: float,
    job: Callable[[], Awaitable[int]],
    metrics: CommerceMetrics,
) -> None:
    """Run `job` every `interval_s` until cancelled. Failures are logged and counted; the loop
    goes on."""
    while True:
        started = time.perf_counter()
        try:
            handled = await job()
            metrics.job_runs.labels(name, "ok").inc()
            if handled:
                log.info("commerce job pass", extra={"job": name, "handled": handled})
        except asyncio.CancelledError:
            raise
        except Exception:
            metrics.job_runs.labels(name, "error").inc()
            log.exception("commerce job pass failed", extra={"job": name})
        metrics.job_seconds.labels(name).observe(time.perf_counter() - started)
        await asyncio.sleep(interval_s)
