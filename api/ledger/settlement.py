"""Scheduled seller settlement: release an order's escrow to its seller (minus the platform fee)
once the holding period after delivery has passed.

The orders domain calls `schedule_settlement` in the transaction that marks an order delivered
(`due_at = delivered_at + Settings.settlement_hold_s`). `settle_due` settles what is due: each row
in its own transaction, claimed with `FOR UPDATE SKIP LOCKED` so several processes can run the
job at once without waiting on or repeating each other; the settle transfer id is derived from
the order, so even a crash between settling and marking cannot settle twice. An order that can no
longer settle (fully refunded, never captured) is marked `skipped` with the reason.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from api.ledger import service
from core.errors import AppError

log = logging.getLogger("souk.ledger.settlement")
_SETTLE_NAMESPACE = uuid.UUID("0b5c7e0a-9d7f-4d0e-8a2b-6a4c1f3e5d21")


def settle_transfer_id(order_id: uuid.UUID) -> uuid.UUID:
    return uuid.uuid5(_SETTLE_NAMESPACE, str(order_id))


async def schedule_settlement(
    conn: asyncpg.Connection, *, order_id: uuid.UUID, seller_id: uuid.UUID, due_at: datetime
) -> bool:
    """Schedule the order's settlement (in the caller's transaction). False if it already was
    (the first schedule stands)."""
    done = await conn.fetchval(
        """INSERT INTO ledger_settlements (order_id, seller_id, due_at) VALUES ($1, $2, $3)
           ON CONFLICT DO NOTHING RETURNING true""",
        order_id,
        seller_id,
        due_at,
    )
    return bool(done)


@dataclass(frozen=True, slots=True)
class SettleReport:
    settled: int
    skipped: int


async def settle_due(
    pool: asyncpg.Pool, *, now: datetime, fee_bps: int, limit: int = 100
) -> SettleReport:
    """Settle up to `limit` settlements due at `now`. Returns what this call did."""
    settled = skipped = 0
    for _ in range(limit):
        async with pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                """SELECT order_id, seller_id FROM ledger_settlements
                   WHERE state = 'scheduled' AND due_at <= $1
                   ORDER BY due_at LIMIT 1 FOR UPDATE SKIP LOCKED""",
                now,
            )
            if row is None:
                break
            order_id = row["order_id"]
            transfer_id = settle_transfer_id(order_id)
            try:
                async with conn.transaction():  # savepoint: a refusal keeps the claim
                    await service.settle_order(
                        conn, order_id=order_id, seller_id=row["seller_id"],
                        transfer_id=transfer_id, fee_bps=fee_bps,
                    )
            except AppError as exc:
                await conn.execute(
                    """UPDATE ledger_settlements SET state = 'skipped', last_error = $2,
                              updated_at = now() WHERE order_id = $1""",
                    order_id,
                    f"{exc.code}: {exc.message}"[:500],
                )
                log.warning("settlement skipped", extra={"order_id": str(order_id),
                                                         "code": exc.code})
                skipped += 1
                continue
            await conn.execute(
                """UPDATE ledger_settlements SET state = 'settled', transfer_id = $2,
                          updated_at = now() WHERE order_id = $1""",
                order_id,
                transfer_id,
            )
            settled += 1
    return SettleReport(settled, skipped)


async def run_settlements(
    pool: asyncpg.Pool,
    *,
    fee_bps: int,
    interval_s: float,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> None:
    """Background loop for the app's lifespan: settle what is due every `interval_s`. Errors
    are logged and retried on the next round; cancel the task to stop."""
    while True:
        try:
            report = await settle_due(pool, now=clock(), fee_bps=fee_bps)
            if report.settled or report.skipped:
                log.info("settlements run", extra={"settled": report.settled,
                                                   "skipped": report.skipped})
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("settlement round failed", extra={"error": repr(exc)})
        await asyncio.sleep(interval_s)
