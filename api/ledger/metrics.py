"""Ledger gauges for operators, read from the balances every `LEDGER_METRICS_INTERVAL_S` by a
background job (`snapshot`): what the platform holds for whom, by account kind and currency, and
the one number that must always be zero. Labels are kinds and currencies, never ids."""

from __future__ import annotations

import time

import asyncpg
from prometheus_client import CollectorRegistry, Gauge

from api.ledger import store


class LedgerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.balance = Gauge(
            "souk_ledger_balance",
            "Sum of the ledger accounts' balances, in minor units, by account kind and currency "
            "(buyer_wallet: buyers' spendable money; buyer_held: held for unpaid orders; "
            "order_escrow: paid, not yet settled; seller_payable: owed to sellers; "
            "topup_clearing: negative, money received from payment providers; ...).",
            ("kind", "currency"), registry=registry,
        )
        self.accounts = Gauge(
            "souk_ledger_accounts", "Ledger accounts by kind and currency.",
            ("kind", "currency"), registry=registry,
        )
        self.currency_sum = Gauge(
            "souk_ledger_currency_sum",
            "Sum of every balance in a currency: 0 in a sound double-entry ledger; anything "
            "else is an alert (GET /v1/admin/ledger/check says where).", ("currency",),
            registry=registry,
        )
        self.read_at = Gauge(
            "souk_ledger_snapshot_timestamp_seconds",
            "When the ledger gauges were last read (Unix time): stale means the job stopped.",
            registry=registry,
        )


async def snapshot(pool: asyncpg.Pool, metrics: LedgerMetrics) -> int:
    """Read the balances by kind and currency into the gauges (one query over the accounts,
    not the entries). Returns 0: a job pass with nothing to log."""
    rows = await store.balances_by_kind(pool)
    sums: dict[str, int] = {}
    for r in rows:
        metrics.balance.labels(r["kind"], r["currency"]).set(r["total"])
        metrics.accounts.labels(r["kind"], r["currency"]).set(r["accounts"])
        sums[r["currency"]] = sums.get(r["currency"], 0) + r["total"]
    for currency, total in sums.items():
        metrics.currency_sum.labels(currency).set(total)
    metrics.read_at.set(time.time())
    return 0
