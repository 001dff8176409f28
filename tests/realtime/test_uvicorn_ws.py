"""The uvicorn internals the websocket fast path relies on (realtime/uvicorn_ws.py), checked on
the installed uvicorn: a protocol object is built and a real handshake is run through it. If an
upgrade renames or drops any of them, this fails and names them (pyproject.toml pins the range
this passed with)."""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.config import Config
from uvicorn.server import ServerState

from realtime import uvicorn_ws
from realtime.uvicorn_ws import CONN_METHODS, RELIED_ON, LeanWebSocketsProtocol, missing

HANDSHAKE = (
    b"GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


class Transport(asyncio.Transport):
    """What the protocol writes, kept (no socket)."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(
            name, default)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def test_the_installed_uvicorn_is_the_tested_one() -> None:
    assert uvicorn.__version__.startswith(uvicorn_ws.TESTED + "."), (
        f"uvicorn {uvicorn.__version__}: re-run tests/realtime and update TESTED and "
        "pyproject.toml's pin")
    assert uvicorn_ws.UNAVAILABLE is None


def test_the_relied_on_list_is_what_the_fast_path_uses() -> None:
    assert set(RELIED_ON) == {
        "transport", "request", "response", "conn", "close_sent", "disconnected", "queue",
        "writable", "read_paused", "close_timer",
    }
    assert set(CONN_METHODS) == {"send_close", "data_to_send"}


async def test_every_relied_on_attribute_exists_after_a_real_handshake() -> None:
    accepted = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        accepted.set()
        await receive()  # until the disconnect the sink puts in the queue

    config = Config(app=app, ws=LeanWebSocketsProtocol, lifespan="off", log_level="error")
    config.load()
    proto = LeanWebSocketsProtocol(config, ServerState(), {}, _loop=asyncio.get_running_loop())
    assert missing(proto) == ["request", "response"]  # only the handshake sets those two
    transport = Transport()
    proto.connection_made(transport)
    proto.data_received(HANDSHAKE)
    async with asyncio.timeout(5):
        await accepted.wait()
    assert missing(proto) == [], f"uvicorn {uvicorn.__version__} changed: {missing(proto)}"
    assert any(b"101 Switching Protocols" in w for w in transport.written)

    sink = uvicorn_ws.TransportSink(proto)  # drops the handshake's objects
    assert proto.request is None and proto.response is None
    sink.close(4000, "bye")
    assert proto.close_sent and transport.written[-1].startswith(b"\x88")  # a close frame
    proto.close_timer.cancel()
    proto.connection_lost(None)


async def test_a_protocol_missing_attributes_is_served_through_asgi_logged_and_counted(
    caplog: Any,
) -> None:
    from prometheus_client import CollectorRegistry
    from starlette.websockets import WebSocket

    from realtime.metrics import HubMetrics
    from realtime.transport import AsgiSink, make_sink
    from realtime.wire import Codec

    config = Config(app=lambda *a: None, ws=LeanWebSocketsProtocol, lifespan="off")
    config.load()
    proto = LeanWebSocketsProtocol(config, ServerState(), {}, _loop=asyncio.get_running_loop())
    # no handshake: `request` and `response` are missing, as after an upgrade that renamed them
    scope = {"type": "websocket", "path": "/v1/ws", "headers": [], "souk.raw_send": proto.send}
    registry = CollectorRegistry()
    metrics = HubMetrics(registry)
    with caplog.at_level("WARNING", logger="souk.realtime"):
        sink = make_sink(WebSocket(scope, proto.receive, proto.send), Codec.JSON, metrics)
    assert isinstance(sink, AsgiSink)
    sink.stop()
    assert "lacks request, response" in caplog.text
    assert registry.get_sample_value("souk_ws_sinks_total", {"path": "asgi"}) == 1
