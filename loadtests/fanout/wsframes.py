"""A minimal websocket client codec (RFC 6455), Sans-I/O: bytes in, messages out.

Written by hand on purpose: the load generator must receive several hundred thousand
publications per second on one core, and a full client library per connection (python
`websockets`, one object and one task per connection) costs several times more per frame. A
benchmark client needs only: the opening handshake, parsing of *unmasked* server frames
(including fragmented messages and control frames interleaved with them), and building small
*masked* client frames (commands, pongs, close). No extensions (permessage-deflate is never
offered, so the server must not use it).
"""

from __future__ import annotations

import base64
import hashlib
import os

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_MAX_HANDSHAKE = 16 * 1024


class ProtocolError(Exception):
    """The server broke RFC 6455 (or sent something this client does not support)."""


def new_key() -> str:
    """A fresh random `Sec-WebSocket-Key`."""
    return base64.b64encode(os.urandom(16)).decode()


def accept_for(key: str) -> str:
    """The `Sec-WebSocket-Accept` value a server must answer to `key`."""
    return base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()  # noqa: S324


def handshake_request(
    host: str, port: int, path: str, key: str, *, subprotocol: str | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    """The HTTP/1.1 upgrade request for `ws://host:port/path`."""
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if subprotocol:
        lines.append(f"Sec-WebSocket-Protocol: {subprotocol}")
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def parse_handshake_response(
    buffer: bytes, key: str, *, subprotocol: str | None = None
) -> tuple[bool, bytes]:
    """Check the server's answer to the upgrade request.

    Returns `(False, buffer)` while the headers are incomplete (call again with more bytes), and
    `(True, rest)` once the handshake is valid, where `rest` holds the bytes that followed the
    headers (already the first frames). Raises `ProtocolError` on a refused or invalid upgrade.
    """
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        if len(buffer) > _MAX_HANDSHAKE:
            raise ProtocolError("handshake response headers too large")
        return False, buffer
    head, rest = buffer[:end].decode("latin-1"), buffer[end + 4 :]
    status_line, *header_lines = head.split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or parts[1] != "101":
        raise ProtocolError(f"upgrade refused: {status_line!r}")
    fields: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    if fields.get("sec-websocket-accept") != accept_for(key):
        raise ProtocolError("bad Sec-WebSocket-Accept")
    if subprotocol is not None and fields.get("sec-websocket-protocol") != subprotocol:
        raise ProtocolError(f"server did not select subprotocol {subprotocol!r}")
    if "sec-websocket-extensions" in fields:
        raise ProtocolError("server selected an extension this client never offered")
    return True, rest


def mask(payload: bytes, key: bytes) -> bytes:
    """XOR `payload` with the 4-byte masking `key` (one big-integer XOR, fast for small frames)."""
    n = len(payload)
    if n == 0:
        return b""
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")


def client_frame(opcode: int, payload: bytes, *, mask_key: bytes | None = None) -> bytes:
    """One complete (FIN) masked client frame. `mask_key` defaults to 4 random bytes."""
    key = os.urandom(4) if mask_key is None else mask_key
    if len(key) != 4:
        raise ValueError("mask key must be 4 bytes")
    n = len(payload)
    head = bytes([0x80 | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
    return head + key + mask(payload, key)


def server_frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """One unmasked server frame (used by the blaster server and by tests)."""
    n = len(payload)
    first = (0x80 if fin else 0) | opcode
    if n < 126:
        return bytes([first, n]) + payload
    if n < 65536:
        return bytes([first, 126]) + n.to_bytes(2, "big") + payload
    return bytes([first, 127]) + n.to_bytes(8, "big") + payload


class FrameParser:
    """Incremental parser of server frames.

    `feed(data)` returns the complete messages found so far as `(opcode, payload)` pairs:
    fragmented data messages are reassembled (opcode of the first fragment); control frames
    (ping, pong, close) are returned as they arrive, even between fragments. Partial frames are
    kept for the next call. Raises `ProtocolError` on masked server frames, reserved bits,
    unknown opcodes, fragmented/oversized control frames and messages over `max_size`.
    """

    __slots__ = ("_buf", "_frag", "_frag_op", "max_size")

    def __init__(self, *, max_size: int = 16 * 1024 * 1024) -> None:
        self._buf = b""
        self._frag: list[bytes] = []
        self._frag_op = -1
        self.max_size = max_size

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        buf = self._buf + data if self._buf else data
        out: list[tuple[int, bytes]] = []
        pos = 0
        end = len(buf)
        while end - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            n = b1 & 0x7F
            start = pos + 2
            if n == 126:
                if end - pos < 4:
                    break
                n = int.from_bytes(buf[start : start + 2], "big")
                start += 2
            elif n == 127:
                if end - pos < 10:
                    break
                n = int.from_bytes(buf[start : start + 8], "big")
                start += 8
            if b1 & 0x80 or b0 & 0x70:
                raise ProtocolError("masked server frame or reserved bits set")
            if n > self.max_size:
                raise ProtocolError(f"frame of {n} bytes over the limit")
            stop = start + n
            if stop > end:
                break
            payload = buf[start:stop]
            pos = stop
            opcode = b0 & 0x0F
            if b0 & 0x80 and opcode and not self._frag:  # the common case: one whole message
                if opcode > OP_BINARY and (opcode not in (OP_CLOSE, OP_PING, OP_PONG) or n > 125):
                    raise ProtocolError(f"bad control frame (opcode {opcode}, {n} bytes)")
                out.append((opcode, payload))
                continue
            self._fragment(b0, opcode, payload, out)
        self._buf = buf[pos:] if pos < end else b""
        return out

    def _fragment(self, b0: int, opcode: int, payload: bytes, out: list[tuple[int, bytes]]) -> None:
        fin = bool(b0 & 0x80)
        if opcode >= OP_CLOSE:
            if not fin or len(payload) > 125 or opcode not in (OP_CLOSE, OP_PING, OP_PONG):
                raise ProtocolError(f"bad control frame (opcode {opcode})")
            out.append((opcode, payload))
            return
        if opcode == OP_CONT:
            if not self._frag:
                raise ProtocolError("continuation frame without a message in progress")
        elif opcode in (OP_TEXT, OP_BINARY):
            if self._frag:
                raise ProtocolError("new data frame while a fragmented message is in progress")
            self._frag_op = opcode
        else:
            raise ProtocolError(f"unknown opcode {opcode}")
        self._frag.append(payload)
        if sum(map(len, self._frag)) > self.max_size:
            raise ProtocolError("fragmented message over the limit")
        if fin:
            out.append((self._frag_op, b"".join(self._frag)))
            self._frag = []
            self._frag_op = -1


def close_code(payload: bytes) -> int | None:
    """The status code in a close frame's payload (None when the payload is empty)."""
    if len(payload) < 2:
        return None
    return int.from_bytes(payload[:2], "big")
