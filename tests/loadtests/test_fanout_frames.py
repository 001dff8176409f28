"""The benchmark client's websocket codec (pure, no sockets)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadtests.fanout import wsframes as wf


def test_accept_matches_rfc6455_example() -> None:
    # RFC 6455 section 1.3 worked example.
    assert wf.accept_for("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_handshake_request_offers_subprotocol_and_headers() -> None:
    req = wf.handshake_request("127.0.0.1", 8000, "/v1/ws", "k==", subprotocol="souk.v1.json",
                               headers={"Authorization": "Bearer t"})
    text = req.decode()
    assert text.startswith("GET /v1/ws HTTP/1.1\r\n")
    assert "Sec-WebSocket-Protocol: souk.v1.json\r\n" in text
    assert "Authorization: Bearer t\r\n" in text
    assert text.endswith("\r\n\r\n")


def _response(key: str, *, status: str = "101 Switching Protocols", proto: str = "souk.v1.json",
              extra: str = "") -> bytes:
    return (f"HTTP/1.1 {status}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {wf.accept_for(key)}\r\nSec-WebSocket-Protocol: {proto}\r\n"
            f"{extra}\r\n").encode()


def test_handshake_response_incomplete_then_complete_keeps_trailing_frames() -> None:
    key = wf.new_key()
    whole = _response(key) + wf.server_frame(wf.OP_TEXT, b"{}")
    done, buf = wf.parse_handshake_response(whole[:20], key, subprotocol="souk.v1.json")
    assert (done, buf) == (False, whole[:20])
    done, rest = wf.parse_handshake_response(whole, key, subprotocol="souk.v1.json")
    assert done
    assert wf.FrameParser().feed(rest) == [(wf.OP_TEXT, b"{}")]


@pytest.mark.parametrize(
    ("status", "proto", "extra"),
    [
        ("403 Forbidden", "souk.v1.json", ""),
        ("101 Switching Protocols", "other", ""),
        ("101 Switching Protocols", "souk.v1.json",
         "Sec-WebSocket-Extensions: permessage-deflate\r\n"),
    ],
)
def test_handshake_response_refusals(status: str, proto: str, extra: str) -> None:
    key = wf.new_key()
    with pytest.raises(wf.ProtocolError):
        wf.parse_handshake_response(_response(key, status=status, proto=proto, extra=extra), key,
                                    subprotocol="souk.v1.json")


def test_handshake_response_bad_accept() -> None:
    with pytest.raises(wf.ProtocolError, match="Accept"):
        wf.parse_handshake_response(_response("a"), "b", subprotocol="souk.v1.json")


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 70000])
def test_client_frame_is_masked_and_roundtrips(size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    frame = wf.client_frame(wf.OP_BINARY, payload, mask_key=b"\x01\x02\x03\x04")
    assert frame[0] == 0x82
    assert frame[1] & 0x80  # MASK bit
    key_at = 2 + {True: 0, False: 2 if size < 65536 else 8}[size < 126]
    assert frame[key_at : key_at + 4] == b"\x01\x02\x03\x04"
    assert wf.mask(frame[key_at + 4 :], b"\x01\x02\x03\x04") == payload


def test_mask_is_byte_wise_xor() -> None:
    key = b"\xff\x00\x0f\xf0"
    data = b"abcdefg"
    assert wf.mask(data, key) == bytes(b ^ key[i % 4] for i, b in enumerate(data))


@settings(max_examples=100, deadline=None)
@given(
    messages=st.lists(st.binary(max_size=70_000), min_size=1, max_size=6),
    cuts=st.lists(st.integers(min_value=0, max_value=200_000), max_size=8),
)
def test_parser_reassembles_any_split(messages: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(wf.server_frame(wf.OP_TEXT, m) for m in messages)
    points = sorted({c % (len(stream) + 1) for c in cuts})
    parser = wf.FrameParser()
    out: list[tuple[int, bytes]] = []
    prev = 0
    for p in [*points, len(stream)]:
        out += parser.feed(stream[prev:p])
        prev = p
    assert out == [(wf.OP_TEXT, m) for m in messages]


def test_parser_fragmented_message_with_interleaved_ping() -> None:
    stream = (wf.server_frame(wf.OP_TEXT, b"[1,", fin=False)
              + wf.server_frame(wf.OP_PING, b"p")
              + wf.server_frame(wf.OP_CONT, b"2", fin=False)
              + wf.server_frame(wf.OP_CONT, b"]"))
    assert wf.FrameParser().feed(stream) == [(wf.OP_PING, b"p"), (wf.OP_TEXT, b"[1,2]")]


@pytest.mark.parametrize(
    "stream",
    [
        bytes([0x81, 0x81, 0, 0, 0, 0, 0x41]),  # masked server frame
        bytes([0xC1, 0x01, 0x41]),  # RSV1 without an extension
        bytes([0x83, 0x00]),  # reserved data opcode
        wf.server_frame(wf.OP_PING, b"x" * 126),  # oversized control frame
        wf.server_frame(wf.OP_CONT, b"x"),  # continuation with nothing to continue
        wf.server_frame(wf.OP_TEXT, b"a", fin=False) + wf.server_frame(wf.OP_TEXT, b"b"),
    ],
)
def test_parser_rejects_protocol_violations(stream: bytes) -> None:
    with pytest.raises(wf.ProtocolError):
        wf.FrameParser().feed(stream)


def test_parser_enforces_max_size() -> None:
    with pytest.raises(wf.ProtocolError):
        wf.FrameParser(max_size=10).feed(wf.server_frame(wf.OP_TEXT, b"x" * 11))


def test_close_code() -> None:
    assert wf.close_code((4008).to_bytes(2, "big") + b"slow") == 4008
    assert wf.close_code(b"") is None
