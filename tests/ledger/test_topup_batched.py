"""HTTP top-ups go through the ledger's group commit (api/ledger/batcher.py) with the key row
written after the transfer (core/idempotency.run_then_store): many buyers' concurrent top-ups
share batches, each answer comes after its commit, a key replays, and a transfer committed
without its key row (a crash between the two) is replayed, never credited twice."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from starlette.applications import Starlette

from api.ledger.batcher import LedgerBatcher
from core.context import Runtime
from core.errors import IdempotencyKeyReused
from core.idempotency import run_then_store
from tests.conftest import Register
from tests.support.lifespan import lifespan_state


def _batcher(app: Starlette) -> LedgerBatcher:
    batcher: LedgerBatcher = lifespan_state(app.state.manager)["ledger_batcher"]
    return batcher


async def test_concurrent_topups_share_batches_and_each_is_committed(
    app: Starlette, client: httpx.AsyncClient, register: Register, rt: Runtime,
) -> None:
    buyers = [await register("buyer") for _ in range(4)]
    batcher = _batcher(app)
    before = batcher.batches

    async def topup(n: int) -> httpx.Response:
        buyer = buyers[n % len(buyers)]
        return await client.post("/v1/wallet/topups", json={"amount": 100 + n},
                                  headers={**buyer.headers, "Idempotency-Key": f"b-{n}"})

    responses = await asyncio.gather(*(topup(n) for n in range(24)))
    assert [r.status_code for r in responses] == [201] * 24, [r.text for r in responses]
    assert 1 <= batcher.batches - before < 24  # they went through the group commit, together
    for r in responses:  # committed before the answer: the transfer is there
        transfer_id = uuid.UUID(r.json()["transfer"]["id"])
        assert await rt.pool.fetchval(
            "SELECT count(*) FROM ledger_transfers WHERE id = $1", transfer_id) == 1
    for i, buyer in enumerate(buyers):
        wallet = (await client.get("/v1/wallet", headers=buyer.headers)).json()
        assert wallet["available"] == sum(100 + n for n in range(24) if n % 4 == i)
    stored = await rt.pool.fetchval(
        "SELECT count(*) FROM idempotency_keys WHERE scope = 'wallet.topup' AND status_code = 201")
    assert stored == 24
    again = await client.post("/v1/wallet/topups", json={"amount": 100},
                              headers={**buyers[0].headers, "Idempotency-Key": "b-0"})
    assert again.json() == responses[0].json()
    assert await rt.pool.fetchval("SELECT sum(balance) FROM ledger_accounts") == 0


async def test_run_then_store_replays_and_refuses_another_body(rt: Runtime) -> None:
    user = uuid.uuid4()
    runs: list[int] = []

    async def work() -> tuple[int, Any]:
        runs.append(1)
        return 201, {"n": len(runs)}

    first = await run_then_store(rt.pool, user_id=user, scope="t", key="k", fingerprint=b"a",
                                 work=work)
    again = await run_then_store(rt.pool, user_id=user, scope="t", key="k", fingerprint=b"a",
                                 work=work)
    assert (first.body, first.replayed, again.body, again.replayed) == (
        {"n": 1}, False, {"n": 1}, True)
    assert len(runs) == 1
    try:
        await run_then_store(rt.pool, user_id=user, scope="t", key="k", fingerprint=b"b",
                             work=work)
    except IdempotencyKeyReused:
        pass
    else:
        raise AssertionError("another body under the same key must be refused")
    # concurrent duplicates: each runs its (self-idempotent) work, one answer is stored, and
    # every caller gets that one
    outcomes = await asyncio.gather(*(run_then_store(
        rt.pool, user_id=user, scope="t", key="storm", fingerprint=b"s", work=work)
        for _ in range(5)))
    assert len({str(o.body) for o in outcomes}) == 1


async def test_a_transfer_committed_without_its_key_row_is_replayed(
    client: httpx.AsyncClient, register: Register, rt: Runtime,
) -> None:
    buyer = await register("buyer")
    headers = {**buyer.headers, "Idempotency-Key": "crash"}
    first = await client.post("/v1/wallet/topups", json={"amount": 700}, headers=headers)
    assert first.status_code == 201
    # as if the process died after the batch committed and before the key row was written
    await rt.pool.execute("DELETE FROM idempotency_keys WHERE key = 'crash'")
    retry = await client.post("/v1/wallet/topups", json={"amount": 700}, headers=headers)
    assert retry.status_code == 201
    assert retry.json()["transfer"]["id"] == first.json()["transfer"]["id"]
    assert (await client.get("/v1/wallet", headers=buyer.headers)).json()["available"] == 700
