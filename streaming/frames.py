"""Pure bitstream rules on reassembled encoded frames (as aiortc depayloads them): is this a
keyframe, and the H.264 parameter sets a keyframe needs. No I/O.

- VP8 (RFC 6386 §9.1): the first byte's bit 0 is the inverse keyframe flag.
- H.264 in Annex-B (aiortc's depayloader writes start codes): NAL type 5 is an IDR slice,
  7 and 8 are the SPS and PPS a decoder needs before it.
- Opus: every frame stands alone.
"""

from __future__ import annotations

IDR, SPS, PPS = 5, 7, 8


def nal_types(data: bytes) -> list[int]:
    """NAL unit types of an Annex-B buffer, in order."""
    out: list[int] = []
    i, n = 0, len(data)
    while True:
        i = data.find(b"\x00\x00\x01", i)
        if i < 0 or i + 3 >= n:
            return out
        out.append(data[i + 3] & 0x1F)
        i += 3


def is_keyframe(codec: str, data: bytes) -> bool:
    """Whether a decoder can start at this frame (`codec`: vp8, h264, opus)."""
    if codec == "vp8":
        return bool(data) and data[0] & 1 == 0
    if codec == "h264":
        return IDR in nal_types(data)
    return True


def split_nals(data: bytes) -> list[bytes]:
    """The NAL units of an Annex-B buffer, each with a 4-byte start code."""
    starts: list[tuple[int, int]] = []
    i = 0
    while True:
        i = data.find(b"\x00\x00\x01", i)
        if i < 0:
            break
        starts.append((i - 1 if i > 0 and data[i - 1] == 0 else i, i + 3))
        i += 3
    out: list[bytes] = []
    for k, (_, body) in enumerate(starts):
        end = starts[k + 1][0] if k + 1 < len(starts) else len(data)
        out.append(b"\x00\x00\x00\x01" + data[body:end])
    return out


class ParameterSets:
    """The latest SPS and PPS seen on an H.264 track; prepends them to an IDR frame that came
    without them (some encoders send them once, then only on request)."""

    def __init__(self) -> None:
        self.sps: bytes | None = None
        self.pps: bytes | None = None

    def complete(self, data: bytes) -> bytes:
        """`data`, with the remembered SPS/PPS in front when it is an IDR lacking them."""
        types = nal_types(data)
        if SPS in types or PPS in types:
            for nal in split_nals(data):
                kind = nal[4] & 0x1F
                if kind == SPS:
                    self.sps = nal
                elif kind == PPS:
                    self.pps = nal
        if IDR in types and SPS not in types and self.sps and self.pps:
            return self.sps + self.pps + data
        return data
