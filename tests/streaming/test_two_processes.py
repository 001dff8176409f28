"""A show lives in the process holding its publisher: WHEP (and WHIP) requests reaching another
process are redirected there with 307; a dead owner's lease runs out."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

from tests.conftest import TIMING_FACTOR, Account
from tests.streaming.clients import moving, new_pc, post_offer, publish, watch
from tests.support.servers import ServerProcess


@pytest.mark.slow
async def test_whep_on_another_process_is_redirected_to_the_owner_and_plays(
    stream_server: Callable[..., ServerProcess], http: httpx.AsyncClient, seller: Account,
    show_id: str, client: httpx.AsyncClient,
) -> None:
    env = {"STREAMING_LEASE_S": "2", "SHOW_PUBLISHER_GRACE_S": "2"}
    a, b = stream_server(**env), stream_server(**env)
    pub = await publish(http, a.url, show_id, seller.access_token)
    try:
        assert pub.location.startswith(a.url + f"/v1/shows/{show_id}/whip/")
        pc = new_pc()
        pc.addTransceiver("video", direction="recvonly")
        r = await post_offer(http, f"{b.url}/v1/shows/{show_id}/whep", pc)
        await pc.close()
        assert r.status_code == 307, r.text
        assert r.headers["location"] == f"{a.url}/v1/shows/{show_id}/whep"
        viewer = await watch(http, f"{b.url}/v1/shows/{show_id}/whep")  # follows the 307
        assert viewer.location.startswith(a.url)
        assert moving(await viewer.frames(20, 10 * TIMING_FACTOR))
        # a second publisher connection reaching B is sent to A as well
        pc = new_pc()
        pc.addTransceiver("video", direction="sendonly")
        r = await post_offer(http, f"{b.url}/v1/shows/{show_id}/whip", pc, seller.access_token)
        await pc.close()
        assert r.status_code == 307 and r.headers["location"].startswith(a.url)
        text = (await http.get(f"{b.url}/metrics")).text
        assert "souk_stream_redirects_total 2.0" in text  # the two WHEP POSTs above
        await viewer.close(http)
        # the owner dies: its lease runs out and nobody holds the show any more
        a.kill()
        await pub.pc.close()

        async def not_live() -> bool:
            pc = new_pc()
            pc.addTransceiver("video", direction="recvonly")
            r = await post_offer(http, f"{b.url}/v1/shows/{show_id}/whep", pc)
            await pc.close()
            return r.status_code == 409 and r.json()["code"] == "show_not_live"

        ok = False
        for _ in range(int(20 * TIMING_FACTOR)):
            if ok := await not_live():
                break
            await asyncio.sleep(0.5)
        assert ok
        # ... and after the grace another process ends the show, as if its publisher had left
        ended = False
        for _ in range(int(40 * TIMING_FACTOR)):
            r = await client.get(f"/v1/shows/{show_id}")
            if ended := r.json()["state"] == "ended":
                break
            await asyncio.sleep(0.25)
        assert ended
    finally:
        await pub.pc.close()
