"""A tiny WHIP/WHEP peer for testing clients before (and apart from) the real server.

An aiortc endpoint on 127.0.0.1 served by uvicorn in the test's own event loop:
- ``POST /whip`` (Bearer ``TOKEN``): answers the offer, decodes what arrives, reads the stamps;
- ``POST /whep``: answers the offer with the synthetic camera (and tone);
- ``DELETE /session/{n}``: closes that peer connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import uvicorn
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from streaming.aiortc_hooks import use_host_addresses
from streaming.publisher import SyntheticAudioTrack, SyntheticVideoTrack
from streaming.synthetic import Stamp, latency_us, read_stamp
from testkit.waiting import eventually
from tests.support.servers import free_port

TOKEN = "seller-token"


@dataclass
class Received:
    kinds: list[str] = field(default_factory=list)
    stamps: list[Stamp] = field(default_factory=list)
    latencies_us: list[int] = field(default_factory=list)
    audio_frames: int = 0
    authorization: list[str | None] = field(default_factory=list)
    deleted: list[int] = field(default_factory=list)


@dataclass
class Peer:
    url: str
    received: Received
    sessions: dict[int, RTCPeerConnection]
    consumers: set[asyncio.Task[None]]  # reading the tracks of WHIP sessions; end with them


async def _consume(track: MediaStreamTrack, received: Received) -> None:
    with contextlib.suppress(MediaStreamError):
        while True:
            frame = await track.recv()
            if track.kind == "audio":
                received.audio_frames += 1
                continue
            stamp = read_stamp(frame)
            if stamp is not None:
                received.stamps.append(stamp)
                received.latencies_us.append(latency_us(stamp, time.time_ns() // 1000))


def _app(received: Received, sessions: dict[int, RTCPeerConnection], size: tuple[int, int],
         tasks: set[asyncio.Task[None]]) -> Starlette:
    async def answer(pc: RTCPeerConnection, request: Request) -> Response:
        await pc.setRemoteDescription(RTCSessionDescription((await request.body()).decode(),
                                                            "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        number = len(sessions) + 1
        sessions[number] = pc
        return Response(pc.localDescription.sdp, 201, media_type="application/sdp",
                        headers={"Location": f"/session/{number}"})

    async def whip(request: Request) -> Response:
        received.authorization.append(request.headers.get("authorization"))
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return Response("no", 401)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))

        @pc.on("track")  # type: ignore[misc]
        def _track(track: MediaStreamTrack) -> None:
            received.kinds.append(track.kind)
            task = asyncio.ensure_future(_consume(track, received))
            tasks.add(task)

        return await answer(pc, request)

    async def whep(request: Request) -> Response:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTrack(SyntheticVideoTrack(*size))
        pc.addTrack(SyntheticAudioTrack())
        return await answer(pc, request)

    async def delete(request: Request) -> Response:
        number = int(request.path_params["n"])
        received.deleted.append(number)
        pc = sessions.get(number)
        if pc is None:
            return Response(status_code=404)
        await pc.close()
        return Response(status_code=200)

    return Starlette(routes=[
        Route("/whip", whip, methods=["POST"]),
        Route("/whep", whep, methods=["POST"]),
        Route("/session/{n:int}", delete, methods=["DELETE"]),
    ])


@contextlib.asynccontextmanager
async def running_peer(size: tuple[int, int] = (640, 480)) -> AsyncIterator[Peer]:
    use_host_addresses(["127.0.0.1"])
    received = Received()
    sessions: dict[int, RTCPeerConnection] = {}
    tasks: set[asyncio.Task[None]] = set()
    port = free_port()
    config = uvicorn.Config(_app(received, sessions, size, tasks), host="127.0.0.1", port=port,
                            log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    serving = asyncio.ensure_future(server.serve())
    await eventually(lambda: server.started or serving.done(), 10.0, step=0.01,
                     what="the test peer serving")  # uvicorn has no started event
    if serving.done():
        serving.result()  # raises what stopped it (the port taken, ...)
    try:
        yield Peer(f"http://127.0.0.1:{port}", received, sessions, tasks)
    finally:
        for pc in list(sessions.values()):
            await pc.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        server.should_exit = True
        await serving
