"""The pages' reading of auction publications (api/web/static/auction.js) agrees with the server's
rule (auctions/wire.py `events_of()`, fed by `publications()`), and their increment table with
the default one: run with Node.js on the same inputs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from typing import Any

import pytest

from auctions import wire
from auctions.model import DEFAULT_STEPS, BidAccepted, Extended, IncrementTable
from tests.web.conftest import ROOT, missing

AUCTION_JS = ROOT / "api" / "web" / "static" / "auction.js"


def node(script: str, data: Any) -> Any:
    exe = shutil.which("node")
    if exe is None:
        missing("node is not installed")
    done = subprocess.run(
        [exe or "node", "--input-type=module", "-e",
         f"import * as a from {json.dumps(AUCTION_JS.as_uri())};"
         "const data = JSON.parse(process.env.DATA);"
         f"console.log(JSON.stringify({script}));"],
        env={**os.environ, "DATA": json.dumps(data)}, capture_output=True, text=True,
        timeout=30, check=True)
    return json.loads(done.stdout)


def test_batches_and_single_events_read_the_same_in_the_page() -> None:
    auction = uuid.uuid4()
    a, b = uuid.uuid4(), uuid.uuid4()
    names = {a: "Mona", b: "Rival"}
    events = [
        BidAccepted(seq=4, price=1100, leader=a, ends_at=1_000,
                    extended=False, reserve_met=True, buy_now_available=False, bid_count=4),
        BidAccepted(seq=5, price=1300, leader=b, ends_at=2_000,
                    extended=True, reserve_met=True, buy_now_available=True, bid_count=5),
        Extended(seq=6, ends_at=3_000),
    ]
    for one in (wire.publications(auction, events, names)
                + wire.publications(auction, events[:1], names)):
        assert node("a.eventsOf(data)", one) == wire.events_of(one)


@pytest.mark.parametrize("price", [0, 999, 2_999, 3_000, 4_999, 5_000, 10_000, 29_999, 30_000,
                                   100_000, 250_000])
def test_the_increment_table_is_the_servers_default(price: int) -> None:
    assert node("a.nextIncrement(data)", price) == IncrementTable(DEFAULT_STEPS).increment(price)
