"""`rider.position` goes out at most ORDER_POSITION_HZ times a second per order: the first at
once, later ones within the interval replaced by the newest, which goes out when it ends."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any, cast

from prometheus_client import CollectorRegistry

from testkit.waiting import scaled
from tests.tracking.helpers import poll
from tracking.ingest import Ingest, IngestConfig
from tracking.metrics import TrackingMetrics
from tracking.model import Limits


async def test_positions_are_throttled_to_the_latest_value() -> None:
    sent: list[tuple[str, dict[str, Any], str, float]] = []

    async def publish(channel: str, data: dict[str, Any], key: str) -> None:
        sent.append((channel, data, key, time.monotonic()))

    ingest = Ingest(pool=cast(Any, None), live=cast(Any, None), history=cast(Any, None),
                    orders=cast(Any, None), publish=publish,
                    metrics=TrackingMetrics(CollectorRegistry()),
                    config=IngestConfig(limits=Limits(), position_hz=4.0, geofence_m=100,
                                        min_eta_speed_mps=2.0))
    order = uuid.uuid4()
    started = time.monotonic()
    for n in range(6):
        await ingest._position(order, {"type": "rider.position", "n": n}, time.perf_counter())
    assert [d["n"] for _, d, _, _ in sent] == [0]

    async def trailing() -> bool:
        return len(sent) == 2
    await poll(trailing)
    assert sent[1][1]["n"] == 5  # only the newest of the waiting ones
    assert sent[1][3] - started >= 0.25 - 0.01  # not before the interval ended
    assert {c for c, _, _, _ in sent} == {f"order:{order}"} and {k for *_, k, _ in sent} == {
        "rider"}
    await asyncio.sleep(scaled(0.3))
    assert len(sent) == 2  # nothing else was waiting
    ingest.order_over(order)
    await ingest._position(order, {"type": "rider.position", "n": 6}, time.perf_counter())
    assert len(sent) == 3  # a finished order's state is gone: the next goes at once
