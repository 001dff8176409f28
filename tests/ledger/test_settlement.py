"""Scheduled settlement: due rows settle once, refunded orders are skipped, several workers at
once never settle an order twice."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from api.ledger import service as ledger
from api.ledger.settlement import schedule_settlement, settle_due, settle_transfer_id
from core.context import Runtime
from tests.ledger.helpers import assert_ledger_sound

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


async def _paid_order(rt: Runtime, seller: uuid.UUID, amount: int = 1_000) -> uuid.UUID:
    buyer, order = uuid.uuid4(), uuid.uuid4()
    async with rt.pool.acquire() as conn, conn.transaction():
        await ledger.topup(conn, user_id=buyer, amount=amount, currency="USD",
                           transfer_id=uuid.uuid4())
        await ledger.hold_for_order(conn, buyer_id=buyer, order_id=order, amount=amount,
                                    currency="USD", transfer_id=uuid.uuid4())
        await ledger.capture_hold(conn, order_id=order, transfer_id=uuid.uuid4())
    return order


async def test_due_settlements_settle_once_and_refunded_orders_are_skipped(rt: Runtime) -> None:
    seller = uuid.uuid4()
    due, later, refunded = [await _paid_order(rt, seller) for _ in range(3)]
    async with rt.pool.acquire() as conn, conn.transaction():
        await ledger.refund_order(conn, order_id=refunded, amount=1_000,
                                  transfer_id=uuid.uuid4(), reason="returned")
        for order, when in ((due, NOW - timedelta(seconds=1)), (later, NOW + timedelta(days=1)),
                            (refunded, NOW - timedelta(days=1))):
            assert await schedule_settlement(conn, order_id=order, seller_id=seller,
                                             due_at=when)
        assert not await schedule_settlement(conn, order_id=due, seller_id=seller, due_at=NOW)
    report = await settle_due(rt.pool, now=NOW, fee_bps=1_000)
    assert (report.settled, report.skipped) == (1, 1)
    assert await ledger.seller_payable(rt.pool, seller, "USD") == 900
    assert await ledger.order_escrow(rt.pool, later) == 1_000
    again = await settle_due(rt.pool, now=NOW, fee_bps=1_000)
    assert (again.settled, again.skipped) == (0, 0)
    rows = {r["order_id"]: (r["state"], r["transfer_id"], r["last_error"]) for r in
            await rt.pool.fetch("SELECT * FROM ledger_settlements")}
    assert rows[due] == ("settled", settle_transfer_id(due), None)
    assert rows[later][0] == "scheduled"
    assert rows[refunded][0] == "skipped"
    assert rows[refunded][2].startswith("hold_conflict")
    final = await settle_due(rt.pool, now=NOW + timedelta(days=2), fee_bps=1_000)
    assert final.settled == 1
    assert await ledger.seller_payable(rt.pool, seller, "USD") == 1_800
    await assert_ledger_sound(rt.pool)


async def test_concurrent_workers_settle_each_order_exactly_once(rt: Runtime) -> None:
    seller = uuid.uuid4()
    orders = [await _paid_order(rt, seller, 100) for _ in range(12)]
    async with rt.pool.acquire() as conn, conn.transaction():
        for order in orders:
            await schedule_settlement(conn, order_id=order, seller_id=seller, due_at=NOW)
    reports = await asyncio.gather(*(settle_due(rt.pool, now=NOW, fee_bps=0) for _ in range(4)))
    assert sum(r.settled for r in reports) == 12
    assert await ledger.seller_payable(rt.pool, seller, "USD") == 1_200
    settles = await rt.pool.fetchval("SELECT count(*) FROM ledger_transfers WHERE kind = 'settle'")
    assert settles == 12
    await assert_ledger_sound(rt.pool)


async def test_the_app_runs_the_settlement_loop(rt: Runtime) -> None:
    """`run_settlements` settles what is due on its own; the app lifespan runs it as a task."""
    from api.ledger.settlement import run_settlements

    seller = uuid.uuid4()
    order = await _paid_order(rt, seller, 500)
    async with rt.pool.acquire() as conn, conn.transaction():
        await schedule_settlement(conn, order_id=order, seller_id=seller, due_at=NOW)
    task = asyncio.create_task(run_settlements(rt.pool, fee_bps=0, interval_s=0.05,
                                               clock=lambda: NOW))
    try:
        for _ in range(400):
            if await ledger.seller_payable(rt.pool, seller, "USD") == 500:
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
    assert await ledger.seller_payable(rt.pool, seller, "USD") == 500
    names = {t.get_name() for t in asyncio.all_tasks()}
    assert "ledger-settlements" in names
