"""FFmpeg's WHIP muxer (PyAV wheel) publishes H.264 + Opus into the server; aiortc viewers play.

One viewer counts the relayed RTP without decoding (H.264 keyframe first, audio arrives), the
other decodes the H.264 and reads the painted frame numbers and capture times back.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable

import httpx
import pytest

from loadtests.streaming import load
from tests.conftest import TIMING_FACTOR, Account
from tests.support.servers import ROOT, ServerProcess


async def wait_live(client: httpx.AsyncClient, show_id: str, timeout_s: float) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        if (await client.get(f"/v1/shows/{show_id}")).json()["state"] == "live":
            return True
        await asyncio.sleep(0.1)
    return False


@pytest.mark.slow
async def test_ffmpeg_publishes_h264_and_opus_that_viewers_play(
    stream_server: Callable[..., ServerProcess], seller: Account, show_id: str,
    client: httpx.AsyncClient,
) -> None:
    server = stream_server()
    seconds = 12 * TIMING_FACTOR
    ffmpeg = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.streaming.ffmpeg_whip",
        f"{server.url}/v1/shows/{show_id}/whip", "--token", seller.access_token,
        "--seconds", str(seconds), cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    try:
        assert await wait_live(client, show_id, 15 * TIMING_FACTOR), "FFmpeg never went live"
        args = load.parse_args([f"{server.url}/v1/shows/{show_id}/whep", "--viewers", "2",
                                "--sample", "1", "--warmup", "1", "--seconds", "3"])
        summary = await asyncio.to_thread(load.run, args)
    finally:
        out, err = await asyncio.wait_for(ffmpeg.communicate(), seconds + 30)
    assert ffmpeg.returncode == 0, err.decode()[-3000:]
    sent = json.loads(out.decode().strip().splitlines()[-1])
    assert sent["video_frames"] >= 25 * seconds * 0.8 and sent["audio_frames"] > 0, sent
    assert summary["playing"] == 2, summary
    assert summary["first_frame_key"] == "1/1", summary  # an H.264 IDR (with SPS) first
    assert summary["fps_min"] >= 15, summary
    assert summary["audio_packets"] > 0, summary  # Opus relayed too
    assert summary["latency_n"] >= 30, summary  # decoded H.264 pictures carry their stamps
