"""Ledger tests run with payout-detail encryption keys configured (two keys, k1 active), and
with the app's settlement job slowed down so tests drive settlements themselves."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.config import Settings
from tests.support.services import drop_isolation, make_settings

KEYS = {kid: base64.b64encode(os.urandom(32)).decode() for kid in ("k1", "k2")}


@pytest.fixture
async def settings(key_dir: Path) -> AsyncIterator[Settings]:
    s = make_settings(
        key_dir, encryption_keys=dict(KEYS), encryption_active_kid="k1",
        settlement_interval_s=3_600, currencies=("USD", "EUR"),
    )
    yield s
    await drop_isolation(s)
