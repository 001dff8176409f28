"""End to end over real server processes: an aiortc publisher (WHIP) and aiortc viewers (WHEP)
on 127.0.0.1, media relayed as packets."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx

from tests.conftest import TIMING_FACTOR, Account
from tests.realtime.wsclient import WsClient
from tests.streaming.clients import moving, publish, watch
from tests.support.servers import ServerProcess


async def test_three_viewers_decode_moving_frames_and_audio(
    stream_server: Callable[..., ServerProcess], http: httpx.AsyncClient, seller: Account,
    show_id: str, client: httpx.AsyncClient,
) -> None:
    server = stream_server()
    ws = await WsClient.open(server.ws_url)
    await ws.call("subscribe", channel=f"show:{show_id}")
    pub = await publish(http, server.url, show_id, seller.access_token)
    viewers = [await watch(http, f"{server.url}/v1/shows/{show_id}/whep") for _ in range(3)]
    try:
        for v in viewers:
            positions = await v.frames(30, timeout_s=10 * TIMING_FACTOR)
            assert len(positions) >= 30, positions
            assert moving(positions), positions
        deadline = asyncio.get_running_loop().time() + 5 * TIMING_FACTOR
        while any(v.audio_frames < 10 for v in viewers):
            assert asyncio.get_running_loop().time() < deadline, [v.audio_frames for v in viewers]
            await asyncio.sleep(0.05)
        r = await client.get(f"/v1/shows/{show_id}")
        assert r.json()["state"] == "live"
        # show:{id} carried the state change and the video state with the viewer count
        seen: list[dict[str, object]] = []
        want = [{"type": "state", "show_id": show_id, "state": "live"},
                {"type": "video", "state": "live", "viewers": 3}]
        while not all(w in seen for w in want):
            [pub_] = await ws.publications(1, wait_s=10 * TIMING_FACTOR)
            seen.append(pub_["data"])
    finally:
        await ws.close()
        for v in viewers:
            await v.close(http)
        await http.delete(pub.location)
        await pub.pc.close()
