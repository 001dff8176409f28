"""A process killed in the middle of a money flow leaves no half-written money, and a retry
with the same transfer ids completes the flow exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid

from api.ledger import service as ledger
from core.config import Settings
from core.context import Runtime
from tests.conftest import TIMING_FACTOR
from tests.ledger.crash_child import step_id
from tests.ledger.helpers import assert_ledger_sound
from tests.support.servers import ROOT


async def _read_line(proc: asyncio.subprocess.Process, timeout_s: float) -> str:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), timeout_s)
    return line.decode().strip()


async def test_sigkill_mid_transaction_leaves_no_half_written_money(
    rt: Runtime, settings: Settings
) -> None:
    buyer, order = uuid.uuid4(), uuid.uuid4()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.ledger.crash_child", settings.database_url,
        settings.database_schema, str(buyer), str(order),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, env={**os.environ},
    )
    try:
        assert await _read_line(proc, 30 * TIMING_FACTOR) == "committed"
        mid = await _read_line(proc, 30 * TIMING_FACTOR)
        assert mid.startswith("mid ")
        backend_pid = int(mid.split()[1])
        # The uncommitted capture and half-transfer are in flight right now.
        proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(proc.wait(), 30 * TIMING_FACTOR)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == -signal.SIGKILL
    # The server notices the dead client and rolls its transaction back.
    for _ in range(int(300 * TIMING_FACTOR)):
        alive = await rt.pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", backend_pid
        )
        if not alive:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the killed client's backend never went away")

    kinds = await rt.pool.fetch("SELECT kind FROM ledger_transfers ORDER BY created_at")
    assert [r["kind"] for r in kinds] == ["topup", "hold"]
    assert await ledger.wallet(rt.pool, buyer, "USD") == ledger.WalletView("USD", 3_000, 2_000)
    assert await ledger.order_escrow(rt.pool, order) == 0
    await assert_ledger_sound(rt.pool)

    # Recovery: the flow is retried from the start with the same ids; done steps replay.
    async with rt.pool.acquire() as conn, conn.transaction():
        topup = await ledger.topup(conn, user_id=buyer, amount=5_000, currency="USD",
                                   transfer_id=step_id(order, "topup"))
        hold = await ledger.hold_for_order(conn, buyer_id=buyer, order_id=order, amount=2_000,
                                           currency="USD", transfer_id=step_id(order, "hold"))
        capture = await ledger.capture_hold(conn, order_id=order,
                                            transfer_id=step_id(order, "capture"))
    assert (topup.replayed, hold.replayed, capture.replayed) == (True, True, False)
    assert await ledger.wallet(rt.pool, buyer, "USD") == ledger.WalletView("USD", 3_000, 0)
    assert await ledger.order_escrow(rt.pool, order) == 2_000
    await assert_ledger_sound(rt.pool)
