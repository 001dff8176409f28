"""Pure RTP header reading for the viewer load generator: frames and keyframes without decoding.

SRTP leaves the RTP header in clear, and aiortc hands the tap the decrypted packet, so a viewer
counts packets, bytes, sequence gaps and frames (the marker bit ends a video frame) and tells
whether its first frame was a keyframe (VP8 payload descriptor P bit, RFC 7741; H.264 NAL types
5/7, also inside STAP-A and FU-A, RFC 6184) from the first bytes of the payload alone.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

RTP_HEADER = struct.Struct("!BBHII")


@dataclass(frozen=True, slots=True)
class Header:
    marker: bool
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload_offset: int


def parse_header(data: bytes) -> Header | None:
    """The fixed header and where the payload starts; None for what is not RTP version 2."""
    if len(data) < 12:
        return None
    first, second, sequence, timestamp, ssrc = RTP_HEADER.unpack_from(data)
    if first >> 6 != 2:
        return None
    offset = 12 + 4 * (first & 0x0F)
    if first & 0x10:
        if len(data) < offset + 4:
            return None
        offset += 4 + 4 * struct.unpack_from("!H", data, offset + 2)[0]
    if offset > len(data):
        return None
    return Header(bool(second & 0x80), second & 0x7F, sequence, timestamp, ssrc, offset)


def vp8_keyframe(payload: bytes) -> bool | None:
    """True/False for the first packet of a VP8 frame, None for a continuation packet."""
    if not payload:
        return None
    first = payload[0]
    start, partition = first & 0x10, first & 0x07
    at = 1
    if first & 0x80 and len(payload) > 1:
        extensions = payload[1]
        at = 2
        if extensions & 0x80:
            at += 2 if len(payload) > at and payload[at] & 0x80 else 1
        if extensions & 0x40:
            at += 1
        if extensions & 0x30:
            at += 1
    if not start or partition != 0 or len(payload) <= at:
        return None
    return payload[at] & 0x01 == 0


def h264_keyframe(payload: bytes) -> bool | None:
    """True when the packet carries an IDR slice or an SPS; None for a non-start FU-A."""
    if not payload:
        return None
    kind = payload[0] & 0x1F
    if kind == 24:  # STAP-A: (16-bit size, NAL) pairs
        at, found = 1, False
        while at + 2 < len(payload):
            size = struct.unpack_from("!H", payload, at)[0]
            found = found or (payload[at + 2] & 0x1F) in (5, 7)
            at += 2 + size
        return found
    if kind == 28:  # FU-A
        if len(payload) < 2 or not payload[1] & 0x80:
            return None
        return (payload[1] & 0x1F) in (5, 7)
    return kind in (5, 7)


def keyframe(codec: str, payload: bytes) -> bool | None:
    name = codec.lower()
    if name == "vp8":
        return vp8_keyframe(payload)
    if name == "h264":
        return h264_keyframe(payload)
    return None
