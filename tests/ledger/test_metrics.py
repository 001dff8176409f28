"""The ledger's gauges: balances by account kind and currency, read from the real tables, and
the per-currency sum that must stay zero."""

from __future__ import annotations

import uuid

import httpx
from prometheus_client import CollectorRegistry

from api.ledger.metrics import LedgerMetrics, snapshot
from core.context import Runtime
from testkit.waiting import eventually
from tests.commerce.helpers import buy, make_product
from tests.conftest import Register


async def test_gauges_follow_the_balances_and_the_app_reads_them(
    client: httpx.AsyncClient, register: Register, rt: Runtime,
) -> None:
    async def read_once() -> str | None:  # the app's job reads them as it starts
        exposed = (await client.get("/metrics")).text
        return None if "souk_ledger_snapshot_timestamp_seconds 0.0" in exposed else exposed

    exposed = await eventually(read_once, 5.0, step=0.05, what="the app's first ledger snapshot")
    assert "souk_ledger_snapshot_timestamp_seconds " in exposed

    seller, buyer = await register("seller"), await register("buyer")
    r = await client.post("/v1/wallet/topups", json={"amount": 5_000},
                          headers={**buyer.headers, "Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 201, r.text
    variant = (await make_product(client, seller, price=1_200))["variants"][0]["id"]
    assert (await buy(client, buyer, variant)).status_code == 201

    registry = CollectorRegistry()
    assert await snapshot(rt.pool, LedgerMetrics(registry)) == 0

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels or None)

    assert value("souk_ledger_balance", kind="buyer_wallet", currency="USD") == 5_000 - 1_200
    assert value("souk_ledger_balance", kind="buyer_held", currency="USD") == 1_200
    assert value("souk_ledger_balance", kind="topup_clearing", currency="USD") == -5_000
    assert value("souk_ledger_accounts", kind="buyer_wallet", currency="USD") == 1
    assert value("souk_ledger_currency_sum", currency="USD") == 0
    assert value("souk_ledger_snapshot_timestamp_seconds") > 0  # type: ignore[operator]
