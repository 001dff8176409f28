"""streaming.publisher and the viewer load generator against a real server process.

The publisher's painted frames go through the relay unchanged: counting viewers get a keyframe
first and ~30 frames a second, a decoding viewer reads every frame's number and capture time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

from loadtests.streaming import load
from streaming.publisher import publish
from tests.conftest import TIMING_FACTOR, Account
from tests.streaming.test_ffmpeg_whip import wait_live
from tests.support.servers import ServerProcess


@pytest.mark.slow
async def test_publisher_cli_to_counting_and_decoding_viewers(
    stream_server: Callable[..., ServerProcess], seller: Account, show_id: str,
    client: httpx.AsyncClient,
) -> None:
    server = stream_server()
    stop = asyncio.Event()
    publishing = asyncio.ensure_future(publish(
        f"{server.url}/v1/shows/{show_id}/whip", seller.access_token, seconds=60, stop=stop))
    try:
        assert await wait_live(client, show_id, 15 * TIMING_FACTOR)
        args = load.parse_args([f"{server.url}/v1/shows/{show_id}/whep", "--viewers", "3",
                                "--sample", "1", "--warmup", "1.5", "--seconds", "3",
                                "--server-pid", str(server.proc.pid if server.proc else 0)])
        summary = await asyncio.to_thread(load.run, args)
    finally:
        stop.set()
        result = await asyncio.wait_for(publishing, 30)
    assert result.status == 201 and result.ended_by == "stopped"
    assert summary["playing"] == 3, summary
    assert summary["first_frame_key"] == "2/2", summary
    assert summary["fps_avg"] >= 20, summary
    assert summary["latency_n"] >= 30, summary
    assert summary["server_cores"] > 0, summary
