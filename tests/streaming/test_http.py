"""WHIP/WHEP over the in-process app with aiortc clients on 127.0.0.1: refusals as
problem+json, auth, limits, late joiners, the grace period, cleanup."""

from __future__ import annotations

import asyncio
import gc
import os
import threading

import httpx
import pytest
from aiortc import RTCPeerConnection

from api.app import create_app
from core.config import Settings
from core.context import Runtime
from testkit.waiting import eventually
from tests.conftest import TIMING_FACTOR, Account, Register
from tests.streaming.clients import (
    Publisher,
    Viewer,
    moving,
    new_pc,
    post_offer,
    publish,
    until,
    watch,
)
from tests.streaming.test_session import audio, sdp, video
from tests.support.lifespan import started

SDP = {"Content-Type": "application/sdp"}


def problem(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == code, r.json()


async def test_whip_auth(client: httpx.AsyncClient, register: Register, show_id: str) -> None:
    url = f"/v1/shows/{show_id}/whip"
    pc = new_pc()
    pc.addTransceiver("video", direction="sendonly")
    try:
        problem(await post_offer(client, url, pc), 401, "unauthorized")
        other = await register("seller")
        buyer = await register("buyer")
        offer = pc.localDescription.sdp
        for who in (other, buyer):
            r = await client.post(url, content=offer, headers={**SDP, **who.headers})
            problem(r, 403, "not_show_seller")
        r = await client.post(url, content=offer, headers={**SDP, "Authorization": "Bearer x"})
        problem(r, 401, "token_invalid")
        r = await client.post("/v1/shows/00000000-0000-0000-0000-000000000000/whip",
                              content=offer, headers={**SDP, **other.headers})
        problem(r, 404, "not_found")
    finally:
        await pc.close()


async def test_bad_offers_are_problems_never_500(client: httpx.AsyncClient, seller: Account,
                                                 show_id: str) -> None:
    url = f"/v1/shows/{show_id}/whip"
    h = {**SDP, **seller.headers}
    fingerprintless = sdp(video("sendonly"), audio("sendonly"))  # passes our checks, not aiortc's
    cases = [
        ({**seller.headers, "Content-Type": "application/json"}, b"{}", 415,
         "unsupported_media_type"),
        (h, b"\xff\xfe", 400, "bad_sdp"),
        (h, b"not sdp at all", 400, "bad_sdp"),
        (h, sdp(audio()).encode(), 422, "unsupported_offer"),
        (h, sdp(video(codecs="av1")).encode(), 422, "no_common_codec"),
        (h, b"v=0\r\n" + b"a=x\r\n" * 8000, 413, "payload_too_large"),
        (h, fingerprintless.encode(), 400, "bad_sdp"),
    ]
    for headers, body, status, code in cases:
        problem(await client.post(url, content=body, headers=headers), status, code)
    viewer_url = f"/v1/shows/{show_id}/whep"
    problem(await client.post(viewer_url, content=sdp(video("recvonly")).encode(), headers=SDP),
            409, "show_not_live")
    r = await client.get(f"/v1/shows/{show_id}")
    assert r.json()["state"] == "scheduled"


async def test_options_patch_delete(client: httpx.AsyncClient, show_id: str) -> None:
    for role in ("whip", "whep"):
        r = await client.options(f"/v1/shows/{show_id}/{role}")
        assert r.status_code == 204
        assert r.headers["access-control-allow-origin"] == "*"
        assert "POST" in r.headers["access-control-allow-methods"]
        assert r.headers["accept-post"] == "application/sdp"
        assert "Authorization" in r.headers["access-control-allow-headers"]
        # as a browser sends it, from a page on another origin: WHIP/WHEP take any origin,
        # whatever CORS_ORIGINS allows for the rest of the API (none here)
        preflight = {"Origin": "http://127.0.0.1:9", "Access-Control-Request-Method": "POST",
                     "Access-Control-Request-Headers": "authorization, content-type"}
        r = await client.options(f"/v1/shows/{show_id}/{role}", headers=preflight)
        assert r.status_code == 204 and r.headers["access-control-allow-origin"] == "*"
        problem(await client.patch(f"/v1/shows/{show_id}/{role}/nope",
                                   content=b"a=candidate:1", headers={
                                       "Content-Type": "application/trickle-ice-sdpfrag"}),
                405, "method_not_allowed")
        problem(await client.delete(f"/v1/shows/{show_id}/{role}/nope"), 404, "not_found")
        # a preflight answers for well-formed ids only (the schema's path patterns)
        session = "A" * 24
        assert (await client.options(f"/v1/shows/{show_id}/{role}/{session}")).status_code == 204
        r = await client.options("/v1/products", headers=preflight)
        assert r.status_code == 400 and "access-control-allow-origin" not in r.headers
        for bad in (f"/v1/shows/not-a-uuid/{role}", f"/v1/shows/{show_id}/{role}/nope",
                    f"/v1/shows/{show_id}/{role}/{session}%C2%84"):
            problem(await client.options(bad), 404, "not_found")


@pytest.mark.slow
async def test_late_viewer_first_frame_within_a_second_and_limits(
    client: httpx.AsyncClient, seller: Account, show_id: str,
) -> None:
    pub = await publish(client, "http://souk.test", show_id, seller.access_token)
    url = f"/v1/shows/{show_id}/whep"
    viewers = [await watch(client, url)]
    try:
        assert moving(await viewers[0].frames(20, 10 * TIMING_FACTOR))
        await asyncio.sleep(2.5)  # a long GOP: aiortc's VP8 encoder sends keyframes on request
        late = await watch(client, url)
        viewers.append(late)
        assert moving(await late.frames(20, 5 * TIMING_FACTOR))
        assert late.first_frame_s is not None and late.first_frame_s < 1.0 * TIMING_FACTOR
        for _ in range(2):
            viewers.append(await watch(client, url))
        r = await client.post(url, content=viewers[0].pc.localDescription.sdp, headers=SDP)
        problem(r, 503, "too_many_sessions")  # STREAMING_MAX_VIEWERS_PER_SHOW=4 here
        assert int(r.headers["retry-after"]) > 0
        text = (await client.get("/metrics")).text
        for name in ("souk_stream_viewers 4.0", "souk_stream_publishers 1.0",
                     "souk_stream_time_to_first_frame_seconds_count",
                     'souk_stream_frames_in_total{kind="video"}',
                     'souk_stream_frames_out_total{kind="audio"}',
                     'souk_stream_keyframe_requests_total{outcome="sent",reason="join"}'):
            assert name in text, name
    finally:
        for v in viewers:
            await v.close(client)
        await pub.pc.close()


async def show_state_becomes(client: httpx.AsyncClient, show_id: str, state: str,
                             timeout_s: float) -> bool:
    """Poll the show's record until its state is `state` or `timeout_s` passes."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        if (await client.get(f"/v1/shows/{show_id}")).json()["state"] == state:
            return True
        if asyncio.get_running_loop().time() >= deadline:
            return False
        await asyncio.sleep(0.1)


@pytest.mark.slow
async def test_publisher_gone_ends_the_show_after_the_grace_and_a_reconnect_resumes(
    client: httpx.AsyncClient, seller: Account, show_id: str,
) -> None:
    base = "http://souk.test"
    pub = await publish(client, base, show_id, seller.access_token)
    viewer = await watch(client, f"/v1/shows/{show_id}/whep")
    try:
        assert moving(await viewer.frames(10, 10 * TIMING_FACTOR))
        # DELETE, then come back inside the 3 s grace: same show, the viewer keeps playing
        assert (await client.delete(pub.location)).status_code == 200
        await pub.pc.close()
        pub = await publish(client, base, show_id, seller.access_token)
        seen = len(viewer.positions)
        assert await until(lambda: len(viewer.positions) > seen + 20, 10 * TIMING_FACTOR)
        assert moving(viewer.positions[seen:])
        assert (await client.get(f"/v1/shows/{show_id}")).json()["state"] == "live"
        # gone for good: the show ends for everyone (the viewers are closed first, then the
        # show's record is ended: poll both, each within its bound)
        await pub.pc.close()  # no DELETE: the server notices the connection closing
        assert await until(lambda: viewer.pc.connectionState == "closed", 10 * TIMING_FACTOR)
        assert await show_state_becomes(client, show_id, "ended", 10 * TIMING_FACTOR)
        await neither_comes_back(client, show_id, seller, pub, viewer)
    finally:
        await viewer.close()
        await pub.pc.close()


async def neither_comes_back(
    client: httpx.AsyncClient, show_id: str, seller: Account, pub: Publisher, viewer: Viewer,
) -> None:
    """An ended show takes no viewer (409 show_not_live) and no publisher (409 show_ended)."""
    problem(await client.post(f"/v1/shows/{show_id}/whep",
                              content=viewer.pc.localDescription.sdp, headers=SDP),
            409, "show_not_live")
    r = await client.post(f"/v1/shows/{show_id}/whip", content=pub.pc.localDescription.sdp,
                          headers={**SDP, **seller.headers})
    problem(r, 409, "show_ended")


async def test_ending_the_show_through_the_api_closes_its_video(
    client: httpx.AsyncClient, seller: Account, show_id: str,
) -> None:
    """The seller ends the show with POST /end while publishing: the relay notices within its
    sweep (2 s) and closes the publisher and the viewers; neither can come back."""
    pub = await publish(client, "http://souk.test", show_id, seller.access_token)
    viewer = await watch(client, f"/v1/shows/{show_id}/whep")
    try:
        assert moving(await viewer.frames(5, 10 * TIMING_FACTOR))
        r = await client.post(f"/v1/shows/{show_id}/end", headers=seller.headers)
        assert r.status_code == 200 and r.json()["state"] == "ended", r.text
        assert await until(lambda: viewer.pc.connectionState == "closed", 6 * TIMING_FACTOR)
        assert await until(lambda: pub.pc.connectionState == "closed", 6 * TIMING_FACTOR)
        await neither_comes_back(client, show_id, seller, pub, viewer)
    finally:
        await viewer.close()
        await pub.pc.close()


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _threads() -> int:
    """Threads other than executor workers (the default executor grows its pool lazily)."""
    return sum(1 for t in threading.enumerate()
               if not t.name.startswith(("asyncio_", "ThreadPoolExecutor")))


def _peer_connections() -> int:
    return sum(1 for o in gc.get_objects() if isinstance(o, RTCPeerConnection))


@pytest.mark.slow
async def test_no_leak_after_50_viewer_cycles(client: httpx.AsyncClient, seller: Account,
                                              show_id: str) -> None:
    pub = await publish(client, "http://souk.test", show_id, seller.access_token, audio=False)
    url = f"/v1/shows/{show_id}/whep"
    try:
        first = await watch(client, url, audio=False)
        assert await first.frames(5, 10 * TIMING_FACTOR)
        await first.close(client)
        del first

        async def first_gone() -> bool:  # the server closed its session (the baseline's state)
            return "souk_stream_viewers 0.0" in (await client.get("/metrics")).text

        await eventually(first_gone, 10.0, step=0.05)
        gc.collect()
        tasks, fds = len(asyncio.all_tasks()), _open_fds()
        threads, pcs = _threads(), _peer_connections()
        for i in range(50):
            v = await watch(client, url, audio=False)
            assert await v.frames(1, 10 * TIMING_FACTOR), i
            # half leave politely (DELETE), half just vanish (the server sees DTLS close)
            await v.close(client if i % 2 else None)
        del v
        assert await until(lambda: len(asyncio.all_tasks()) <= tasks, 10 * TIMING_FACTOR), (
            len(asyncio.all_tasks()), tasks)

        def released() -> bool:  # the last viewer's peer connections finish closing
            gc.collect()
            return _open_fds() <= fds and _threads() <= threads and _peer_connections() <= pcs

        await eventually(released, 10.0, step=0.05, what="the viewers' resources released")
        assert _open_fds() <= fds, (_open_fds(), fds)
        assert _threads() <= threads, [t.name for t in threading.enumerate()]
        assert _peer_connections() <= pcs
        text = (await client.get("/metrics")).text
        assert "souk_stream_viewers 0.0" in text
    finally:
        await pub.pc.close()


async def test_buyers_list_live_then_upcoming_shows(client: httpx.AsyncClient,
                                                    seller: Account) -> None:
    async def make(title: str, starts_at: str | None = None) -> str:
        body = {"title": title} | ({"starts_at": starts_at} if starts_at else {})
        r = await client.post("/v1/shows", json=body, headers=seller.headers)
        return str(r.json()["id"])

    later = await make("later", "2099-01-02T00:00:00Z")
    sooner = await make("sooner", "2099-01-01T00:00:00Z")
    live = await make("live")
    ended = await make("ended")
    for show, actions in ((live, ("start",)), (ended, ("start", "end"))):
        for action in actions:
            r = await client.post(f"/v1/shows/{show}/{action}", headers=seller.headers)
            assert r.status_code == 200, r.text
    r = await client.get("/v1/shows", params={"state": "live,scheduled",
                                              "seller_id": seller.id})
    assert [s["id"] for s in r.json()["items"]] == [live, sooner, later]
    r = await client.get("/v1/shows", params={"state": "live,bogus"})
    problem(r, 422, "validation_failed")


@pytest.mark.slow
async def test_h264_show_reaches_h264_viewers_and_refuses_vp8_only_ones(
    client: httpx.AsyncClient, seller: Account, show_id: str,
) -> None:
    pub = await publish(client, "http://souk.test", show_id, seller.access_token, codec="h264")
    url = f"/v1/shows/{show_id}/whep"
    viewer = await watch(client, url)
    try:
        assert moving(await viewer.frames(20, 10 * TIMING_FACTOR))
        pc = new_pc()
        transceiver = pc.addTransceiver("video", direction="recvonly")
        from aiortc import RTCRtpReceiver

        transceiver.setCodecPreferences([c for c in RTCRtpReceiver.getCapabilities("video").codecs
                                         if c.mimeType == "video/VP8"])
        r = await post_offer(client, url, pc)
        await pc.close()
        problem(r, 422, "no_common_codec")
        assert "h264" in r.json()["detail"]
    finally:
        await viewer.close(client)
        await pub.pc.close()


@pytest.mark.slow
async def test_sessions_that_never_connect_or_go_silent_are_closed(
    client: httpx.AsyncClient, seller: Account, show_id: str,
) -> None:
    pub = await publish(client, "http://souk.test", show_id, seller.access_token, audio=False)
    try:
        # a viewer that POSTs but never completes ICE (never applies the answer)
        pc = new_pc()
        pc.addTransceiver("video", direction="recvonly")
        r = await post_offer(client, f"/v1/shows/{show_id}/whep", pc)
        assert r.status_code == 201
        await pc.close()

        async def gauge(name: str) -> str:
            text = (await client.get("/metrics")).text
            return next(line for line in text.splitlines() if line.startswith(name + " "))

        assert await gauge("souk_stream_viewers") == "souk_stream_viewers 1.0"
        closed = False
        for _ in range(int(40 * TIMING_FACTOR)):
            if closed := await gauge("souk_stream_viewers") == "souk_stream_viewers 0.0":
                break
            await asyncio.sleep(0.25)
        assert closed
        text = (await client.get("/metrics")).text
        assert 'souk_stream_session_ends_total{reason="connect_timeout",role="whep"} 1.0' in text
        # the publisher's connection stays up but its media stops: it is gone, then the show ends
        for sender in pub.pc.getSenders():
            sender.replaceTrack(None)
        ended = False
        for _ in range(int(60 * TIMING_FACTOR)):
            if ended := (await client.get(f"/v1/shows/{show_id}")).json()["state"] == "ended":
                break
            await asyncio.sleep(0.25)
        assert ended
        text = (await client.get("/metrics")).text
        assert 'souk_stream_session_ends_total{reason="media_timeout",role="whip"} 1.0' in text
    finally:
        await pub.pc.close()


@pytest.mark.slow
async def test_shutdown_closes_every_peer_connection_and_releases_the_show(
    settings: Settings, rt: Runtime, seller: Account, show_id: str,
) -> None:
    other = create_app(settings)  # a second process-like app on the same database and Redis
    async with started(other) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://souk.test") as c:
            pub = await publish(c, "http://souk.test", show_id, seller.access_token)
            viewer = await watch(c, f"/v1/shows/{show_id}/whep")
            assert await viewer.frames(5, 10 * TIMING_FACTOR)
            service = manager._state["streaming"]
            server_pcs = [s.pc for s in service.sessions.values()]
            assert len(server_pcs) == 2
            owner_key = f"{settings.redis_prefix}stream:owner:{show_id}"
            assert await rt.redis.exists(owner_key) == 1
    try:
        assert [pc.connectionState for pc in server_pcs] == ["closed", "closed"]
        assert await until(lambda: viewer.pc.connectionState == "closed", 10 * TIMING_FACTOR)
        assert await rt.redis.exists(owner_key) == 0  # a reconnect may go to another process
    finally:
        await viewer.close()
        await pub.pc.close()
