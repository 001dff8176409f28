"""Frame encoding for the two websocket subprotocols, and raw server frame headers.

`souk.v1.json` sends text frames of JSON; `souk.v1.msgpack` binary frames of MessagePack; the
structures are the same. A server frame may carry several messages when they were ready at the
same time: JSON messages are separated by a newline (`\\n`, never inside a JSON document as
orjson writes no raw newlines), MessagePack messages are simply concatenated (a streaming
unpacker reads them one after another). Clients must read every message of a frame.

Publications are encoded once per protocol per process: the JSON form arrives ready-made from
Redis (built by the publish script), the MessagePack form is derived from it once, lazily.
"""

from __future__ import annotations

import enum
import struct
from typing import Any

import msgpack
import orjson

JSON_SUBPROTOCOL = "souk.v1.json"
MSGPACK_SUBPROTOCOL = "souk.v1.msgpack"


class Codec(enum.Enum):
    JSON = JSON_SUBPROTOCOL
    MSGPACK = MSGPACK_SUBPROTOCOL

    @property
    def separator(self) -> bytes:
        return b"\n" if self is Codec.JSON else b""

    @property
    def opcode(self) -> int:
        return 0x1 if self is Codec.JSON else 0x2


def pick_codec(offered: list[str]) -> Codec | None:
    """The first subprotocol we speak among those the client offered; None if none. A client
    that offers no subprotocol at all gets JSON."""
    if not offered:
        return Codec.JSON
    for name in offered:
        for codec in Codec:
            if name == codec.value:
                return codec
    return None


class FrameError(ValueError):
    """A client frame that is not a JSON/MessagePack object."""


def decode(codec: Codec, raw: bytes | str) -> Any:
    """The object in one client frame. Raises FrameError."""
    try:
        if codec is Codec.JSON:
            if isinstance(raw, bytes):
                raise FrameError("send text frames with souk.v1.json")
            return orjson.loads(raw)
        if isinstance(raw, str):
            raise FrameError("send binary frames with souk.v1.msgpack")
        return msgpack.unpackb(raw, raw=False, strict_map_key=True)
    except (orjson.JSONDecodeError, ValueError, msgpack.ExtraData, msgpack.FormatError,
            msgpack.StackError, TypeError, UnicodeDecodeError) as exc:
        if isinstance(exc, FrameError):
            raise
        raise FrameError("the frame is not valid " + codec.name) from None


def encode(codec: Codec, message: Any) -> bytes:
    """One message (a reply, a push) in `codec`. `orjson.Fragment` values are embedded as is in
    JSON; for MessagePack pass plain objects."""
    if codec is Codec.JSON:
        return orjson.dumps(message)
    return msgpack.packb(message, use_bin_type=True)  # type: ignore[no-any-return]


def publication_json(channel: str, offset: int | None, data_json: bytes) -> bytes:
    """The JSON publication message around already-encoded `data_json` (no re-encoding).
    `channel` must be a valid channel name (they need no escaping)."""
    head = b'{"channel":"' + channel.encode() + b'"'
    if offset is not None:
        head += b',"offset":' + str(offset).encode()
    return head + b',"data":' + data_json + b"}"


def json_to_msgpack(message_json: bytes) -> bytes:
    """Re-encode one JSON message as MessagePack (done once per publication per process)."""
    return msgpack.packb(orjson.loads(message_json), use_bin_type=True)  # type: ignore[no-any-return]


def frame_header(opcode: int, length: int) -> bytes:
    """RFC 6455 header of an unmasked, final, uncompressed server frame of `length` bytes."""
    first = 0x80 | opcode
    if length < 126:
        return bytes((first, length))
    if length < 65536:
        return struct.pack("!BBH", first, 126, length)
    return struct.pack("!BBQ", first, 127, length)


def frame(codec: Codec, payload: bytes) -> bytes:
    """A complete server frame holding `payload` (one or several joined messages)."""
    return frame_header(codec.opcode, len(payload)) + payload


def close_frame(code: int, reason: str = "") -> bytes:
    """A complete server close frame."""
    body = struct.pack("!H", code) + reason.encode()[:120]
    return frame_header(0x8, len(body)) + body


def subscribe_reply(codec: Codec, id_: int, result: dict[str, Any], pubs: list[bytes]) -> bytes:
    """`{"id", "result": {...result, "publications": [...]}}` with the JSON publications
    embedded as they are (JSON) or decoded once (MessagePack)."""
    if codec is Codec.JSON:
        body = {**result, "publications": [orjson.Fragment(p) for p in pubs]}
        return orjson.dumps({"id": id_, "result": body})
    body = {**result, "publications": [orjson.loads(p) for p in pubs]}
    return msgpack.packb({"id": id_, "result": body}, use_bin_type=True)  # type: ignore[no-any-return]
