"""A join storm: WHEP POSTs flooding in at once. The process admits at most
STREAMING_MAX_PENDING_HANDSHAKES viewer handshakes in flight; the rest get 503 + Retry-After
(problem+json `viewer_joins_busy`, counted), the publisher stays connected, the show stays live,
the viewers already watching keep playing, the admitted ones play, and a refused one that
retries once the joins are done gets in."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from core.config import Settings
from streaming.joins import JoinSlots
from streaming.metrics import StreamingMetrics
from streaming.records import Session
from streaming.session import HandshakesBusy
from tests.conftest import TIMING_FACTOR, Account
from tests.streaming.clients import (
    accept_answer,
    moving,
    new_viewer,
    offer_viewer,
    publish,
    until,
    watch,
)
from tests.support.services import drop_isolation, make_settings

SDP = {"Content-Type": "application/sdp"}
CAP = 3
FLOOD = 10


@pytest.fixture
async def settings(key_dir: Path) -> AsyncIterator[Settings]:
    s = make_settings(key_dir, show_publisher_grace_s=3.0 * TIMING_FACTOR,
                      streaming_max_viewers_per_show=20,
                      streaming_max_pending_handshakes=CAP,
                      streaming_connect_timeout_s=5.0 * TIMING_FACTOR,
                      streaming_media_timeout_s=3.0 * TIMING_FACTOR)
    yield s
    await drop_isolation(s)


def test_join_slots_count_each_session_once_and_count_refusals() -> None:
    registry = CollectorRegistry()
    slots = JoinSlots(2, StreamingMetrics(registry))
    sessions = [Session(str(i), "whep", None, None, 0.0) for i in range(2)]  # type: ignore[arg-type]
    for session in sessions:
        slots.admit()
        slots.hand_to(session)
    with pytest.raises(HandshakesBusy):
        slots.admit()
    assert registry.get_sample_value("souk_stream_sessions_total",
                                     {"role": "whep", "outcome": "busy"}) == 1
    assert registry.get_sample_value("souk_stream_pending_handshakes") == 2
    slots.release(sessions[0])  # connected
    slots.release(sessions[0])  # then closed: the slot is not given back twice
    assert slots.pending == 1
    slots.admit()
    slots.release()  # that request failed before it had a session
    slots.release(sessions[1])
    assert slots.pending == 0 and registry.get_sample_value("souk_stream_pending_handshakes") == 0


async def metric(client: httpx.AsyncClient, name: str) -> float:
    text = (await client.get("/metrics")).text
    line = next((x for x in text.splitlines() if x.startswith(name + " ")), None)
    return float(line.split()[-1]) if line else 0.0


@pytest.mark.slow
async def test_a_join_storm_is_capped_and_the_publisher_keeps_the_show(
    client: httpx.AsyncClient, seller: Account, show_id: str,
) -> None:
    pub = await publish(client, "http://souk.test", show_id, seller.access_token, audio=False)
    url = f"/v1/shows/{show_id}/whep"
    watching = await watch(client, url, audio=False)
    storm = [new_viewer(audio=False) for _ in range(FLOOD)]
    try:
        assert moving(await watching.frames(10, 10 * TIMING_FACTOR))
        assert await until(lambda: pub.pc.connectionState == "connected", 5 * TIMING_FACTOR)
        offers = [await offer_viewer(v) for v in storm]
        responses = await asyncio.gather(*(client.post(url, content=o, headers=SDP)
                                           for o in offers))
        admitted = [v for v, r in zip(storm, responses, strict=True) if r.status_code == 201]
        refused = [(v, r) for v, r in zip(storm, responses, strict=True) if r.status_code != 201]
        assert len(admitted) == CAP, [r.status_code for r in responses]
        for _, r in refused:
            assert r.status_code == 503, r.text
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.json()["code"] == "viewer_joins_busy"
            assert 1 <= int(r.headers["retry-after"]) <= 3
        assert await metric(client, "souk_stream_pending_handshakes") == CAP
        busy = 'souk_stream_sessions_total{outcome="busy",role="whep"}'
        assert await metric(client, busy) == FLOOD - CAP

        for v, r in zip(storm, responses, strict=True):
            if r.status_code == 201:
                await accept_answer(v, r)
        seen = len(watching.positions)
        for v in admitted:
            assert moving(await v.frames(10, 10 * TIMING_FACTOR))
        assert await until(lambda: len(watching.positions) > seen + 10, 10 * TIMING_FACTOR)
        assert moving(watching.positions[seen:])  # the viewer already there kept playing
        assert pub.pc.connectionState == "connected"
        assert (await client.get(f"/v1/shows/{show_id}")).json()["state"] == "live"
        ended = 'souk_stream_session_ends_total{reason="closed",role="whip"}'
        assert await metric(client, ended) == 0

        # the joins are done: the slots are free again and a refused viewer gets in on retry
        async def slots_free() -> bool:
            return await metric(client, "souk_stream_pending_handshakes") == 0

        for _ in range(int(40 * TIMING_FACTOR)):
            if await slots_free():
                break
            await asyncio.sleep(0.25)
        assert await slots_free()
        late, refusal = refused[0]
        r = await client.post(url, content=late.pc.localDescription.sdp, headers=SDP)
        assert r.status_code == 201, (r.text, refusal.text)
        await accept_answer(late, r)
        assert moving(await late.frames(10, 10 * TIMING_FACTOR))
        assert await metric(client, "souk_stream_viewers") == 1 + CAP + 1
    finally:
        for v in [watching, *storm]:
            await v.close()
        await pub.pc.close()
