"""The portable sink: under uvicorn's wsproto implementation the hub cannot write frames to the
transport itself and goes through ASGI sends instead; the protocol is the same."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import uvicorn

from api.app import create_app
from core.config import Settings
from realtime.transport import AsgiSink
from testkit.servers import free_port
from testkit.waiting import eventually
from tests.realtime.wsclient import WsClient


@pytest.fixture
async def wsproto_server(settings: Settings) -> AsyncIterator[tuple[str, uvicorn.Server]]:
    port = free_port()
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, ws="wsproto",
                            log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.ensure_future(server.serve())
    await eventually(lambda: server.started, 30.0, step=0.05, what="uvicorn (wsproto) started")
    yield f"ws://127.0.0.1:{port}", server
    server.should_exit = True
    await task


async def test_subscribe_publish_and_errors_through_asgi_sends(
    wsproto_server: tuple[str, uvicorn.Server],
) -> None:
    url, server = wsproto_server
    channel = f"auction:{uuid.uuid4()}"
    sub = await WsClient.open(url)
    mp = await WsClient.open(url, binary=True)
    for c in (sub, mp):
        r = await c.call("subscribe", channel=channel)
        assert r["result"]["offset"] == 0
    state = server.lifespan.state  # type: ignore[attr-defined]
    assert {type(c.sink) for c in state["hub"].clients} == {AsgiSink}
    for i in range(3):
        await state["hub"].publish(channel, {"n": i})
    for c in (sub, mp):
        pubs = await c.publications(3)
        assert [p["offset"] for p in pubs] == [1, 2, 3]
    await sub.send_raw("nonsense")
    assert (await sub.next_error())["error"]["code"] == "malformed_frame"
    await sub.close()
    await mp.close()
