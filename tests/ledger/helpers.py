"""Shared checks for ledger tests: the global invariants, read straight from the database."""

from __future__ import annotations

from typing import Any

import asyncpg

from api.ledger import store


async def assert_ledger_sound(conn: asyncpg.Connection | asyncpg.Pool) -> dict[str, Any]:
    """Every invariant that must hold at any commit point; returns the audit report."""
    report = await store.audit(conn)
    assert report["balance_mismatches"] == [], report
    assert report["unbalanced_transfers"] == [], report
    assert report["negative_accounts"] == 0, report
    assert all(c["sum"] == 0 for c in report["currencies"]), report
    assert report["ok"] is True
    return report
