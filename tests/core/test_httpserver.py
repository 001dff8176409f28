"""Request headers are bounded in size, count and time (issue 17, finding 3): raw sockets on
127.0.0.1 against a real server process."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable

import pytest
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from core.httpserver import RELIED_ON, BoundedHttpToolsProtocol
from tests.conftest import TIMING_FACTOR
from tests.support.servers import ServerProcess

pytestmark = pytest.mark.integration


def test_the_uvicorn_internals_relied_on_are_still_there() -> None:
    missing = [name for name in RELIED_ON if not callable(getattr(HttpToolsProtocol, name, None))]
    assert missing == [], f"uvicorn changed: {missing} (core/httpserver.py must follow)"
    assert issubclass(BoundedHttpToolsProtocol, HttpToolsProtocol)


def _exchange(port: int, request: bytes, wait_s: float = 10.0) -> bytes:
    """Send `request`, return everything the server sends until it closes or `wait_s`."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait_s) as s:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            s.sendall(request)  # may be refused mid-send: read the answer
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
                if b"\r\n\r\n" in out and b"connection: close" not in out.lower():
                    break
        except (TimeoutError, ConnectionResetError):
            pass
        return out


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def test_header_size_and_count_are_bounded_with_431(
    servers: Callable[..., ServerProcess]
) -> None:
    server = servers()
    ok = _exchange(server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert _status(ok) == 200
    huge = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n"
    assert _status(_exchange(server.port, huge)) == 431
    many = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(
        b"X-H%d: v\r\n" % i for i in range(10_000)) + b"\r\n"
    assert _status(_exchange(server.port, many)) == 431
    # A big body after small headers is not a big header.
    body = b'{"email": "' + b"a" * 200_000 + b'"}'
    post = (b"POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)) + body
    assert _status(_exchange(server.port, post)) == 422


@pytest.mark.slow
def test_slowloris_connections_are_not_held(servers: Callable[..., ServerProcess]) -> None:
    timeout_s = 2
    server = servers(HTTP_HEADER_TIMEOUT_S=str(timeout_s))
    socks = []
    started = time.monotonic()
    try:
        for i in range(200):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=30)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow-%d: " % i)
            socks.append(s)
        # The server still answers others meanwhile.
        assert _status(_exchange(server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")) == 200
        deadline = started + (timeout_s + 10) * TIMING_FACTOR
        for s in socks:
            s.settimeout(max(0.1, deadline - time.monotonic()))
            answer = b""
            while chunk := s.recv(4096):  # until the server closes it
                answer += chunk
            assert _status(answer) == 408
        assert time.monotonic() - started < (timeout_s + 10) * TIMING_FACTOR
    finally:
        for s in socks:
            s.close()
