"""A synthetic camera and microphone: frames that carry their own number and capture time.

Each video frame (yuv420p) shows diagonal stripes that move from frame to frame (so encoders
send real inter frames) and, in a band at the top, 96 black or white blocks spelling a stamp:

    magic (8 bits) | frame counter (32) | capture time in µs, modulo 2**48 (48) | CRC-8 (8)

The blocks are ``width // 40`` pixels square (16 at 640x480, 32 at 1280x720), 32 to a row, three
rows, so they survive a lossy encode and a reader finds them from the decoded frame's own width.
The capture time is ``time.time_ns() // 1000`` on the publishing machine: a reader on the same
machine subtracts it from its own clock to get camera-to-screen latency with no clock sync.

Pure: no I/O, no clock reads — the caller passes the frame number and the capture time. Only
PyAV (``av``) is used, for the frame objects; the pixels are built as bytes.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from fractions import Fraction

import av

VIDEO_CLOCK_RATE = 90_000
AUDIO_SAMPLE_RATE = 48_000
AUDIO_FRAME_SAMPLES = 960  # 20 ms, Opus's usual frame
TIME_MODULUS_US = 1 << 48

MAGIC = 0xA5
COLUMNS = 32
ROWS = 3
BITS = COLUMNS * ROWS  # 96
BLOCKS_ACROSS = 40  # block size = width // 40; the last 8 block columns stay grey
BLACK = 16
WHITE = 235
GREY = 128
STRIPE_PERIOD = 64

SIZES = {"640x480": (640, 480), "1280x720": (1280, 720)}


@dataclass(frozen=True, slots=True)
class Stamp:
    """What a frame says about itself."""

    counter: int
    capture_us: int  # time.time_ns() // 1000 at capture, modulo TIME_MODULUS_US


def parse_size(text: str) -> tuple[int, int]:
    """``"640x480"`` → ``(640, 480)``; even sizes from 160x120 to 1920x1080."""
    try:
        width_text, height_text = text.lower().split("x")
        width, height = int(width_text), int(height_text)
    except ValueError as exc:
        raise ValueError(f"size must look like 640x480, not {text!r}") from exc
    if not (160 <= width <= 1920 and 120 <= height <= 1080) or width % 2 or height % 2:
        raise ValueError(f"size {text!r}: even width 160-1920 and height 120-1080")
    return width, height


def crc8(data: bytes) -> int:
    """CRC-8 (polynomial 0x07, as in ATM HEC without the final XOR)."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def stamp_bits(stamp: Stamp) -> list[int]:
    """The 96 bits painted for a stamp, most significant first."""
    body = struct.pack(">BI", MAGIC, stamp.counter & 0xFFFFFFFF)
    body += (stamp.capture_us % TIME_MODULUS_US).to_bytes(6, "big")
    payload = body + bytes([crc8(body)])
    return [(byte >> (7 - i)) & 1 for byte in payload for i in range(8)]


def bits_to_stamp(bits: list[int]) -> Stamp | None:
    """The stamp 96 bits spell, or None when the magic or the CRC does not match."""
    if len(bits) != BITS:
        return None
    payload = bytes(
        sum(bit << (7 - i) for i, bit in enumerate(bits[k : k + 8])) for k in range(0, BITS, 8)
    )
    if payload[0] != MAGIC or crc8(payload[:-1]) != payload[-1]:
        return None
    counter = struct.unpack(">I", payload[1:5])[0]
    return Stamp(counter=counter, capture_us=int.from_bytes(payload[5:11], "big"))


def block_size(width: int) -> int:
    return width // BLOCKS_ACROSS


class VideoPainter:
    """Builds the frames of one size; keeps the row patterns so each frame is cheap to paint."""

    def __init__(self, width: int, height: int) -> None:
        if width % 2 or height % 2:
            raise ValueError("yuv420p needs an even width and height")
        self.width = width
        self.height = height
        self.block = block_size(width)
        if self.block < 4 or self.block * ROWS > height:
            raise ValueError(f"{width}x{height} is too small for the stamp")
        ramp = bytes(40 + (175 * (i % STRIPE_PERIOD)) // STRIPE_PERIOD for i in range(256))
        self._stripes = ramp * (width // len(ramp) + 2)
        self._band_rows = ROWS * self.block

    def frame(self, counter: int, capture_us: int) -> av.VideoFrame:
        """Frame number ``counter`` (pts ``counter * 3000`` on a 90 kHz clock at 30 fps)."""
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        luma, cb, cr = frame.planes
        luma.update(self._luma(counter, capture_us, luma.line_size))
        shade = (counter // 3) % 64
        cb.update(bytes([96 + shade]) * cb.buffer_size)
        cr.update(bytes([160 - shade]) * cr.buffer_size)
        frame.pts = counter * (VIDEO_CLOCK_RATE // 30)
        frame.time_base = Fraction(1, VIDEO_CLOCK_RATE)
        return frame

    def _luma(self, counter: int, capture_us: int, stride: int) -> bytes:
        pad = b"\x00" * (stride - self.width)
        rows = self._band(Stamp(counter, capture_us), pad)
        shift = (counter * 4) % STRIPE_PERIOD
        stripes = self._stripes
        width = self.width
        for y in range(self._band_rows, self.height):
            start = (shift + y) % STRIPE_PERIOD
            rows.append(stripes[start : start + width] + pad)
        return b"".join(rows)

    def _band(self, stamp: Stamp, pad: bytes) -> list[bytes]:
        bits = stamp_bits(stamp)
        block = self.block
        tail = bytes([GREY]) * (self.width - COLUMNS * block)
        rows: list[bytes] = []
        for row in range(ROWS):
            line = b"".join(
                bytes([WHITE if bit else BLACK]) * block
                for bit in bits[row * COLUMNS : (row + 1) * COLUMNS]
            )
            rows.extend([line + tail + pad] * block)
        return rows


def read_stamp(frame: av.VideoFrame) -> Stamp | None:
    """Decode the blocks of a decoded frame (any pixel format PyAV can turn into yuv420p)."""
    if frame.format.name != "yuv420p":
        frame = frame.reformat(format="yuv420p")
    luma = frame.planes[0]
    block = block_size(frame.width)
    if block < 4 or block * ROWS > frame.height:
        return None
    data = memoryview(bytes(luma))
    stride = luma.line_size
    quarter = block // 4
    bits: list[int] = []
    for row in range(ROWS):
        cy = row * block + block // 2
        for column in range(COLUMNS):
            cx = column * block + block // 2
            total = 0
            for dy, dx in ((0, 0), (-quarter, -quarter), (-quarter, quarter), (quarter, -quarter),
                           (quarter, quarter)):
                total += data[(cy + dy) * stride + cx + dx]
            bits.append(1 if total > 5 * GREY else 0)
    return bits_to_stamp(bits)


def latency_us(stamp: Stamp, now_us: int) -> int:
    """Microseconds from capture to ``now_us`` (both from time.time_ns() // 1000)."""
    return (now_us - stamp.capture_us) % TIME_MODULUS_US


class AudioPainter:
    """20 ms of a 400 Hz tone (s16, mono, 48 kHz) per frame; 400 Hz fits 960 samples exactly."""

    def __init__(self, level: float = 0.2) -> None:
        samples = [
            int(32767 * level * math.sin(2 * math.pi * 400 * i / AUDIO_SAMPLE_RATE))
            for i in range(AUDIO_FRAME_SAMPLES)
        ]
        self._pcm = struct.pack(f"<{AUDIO_FRAME_SAMPLES}h", *samples)

    def frame(self, counter: int) -> av.AudioFrame:
        frame = av.AudioFrame(format="s16", layout="mono", samples=AUDIO_FRAME_SAMPLES)
        frame.planes[0].update(self._pcm)
        frame.sample_rate = AUDIO_SAMPLE_RATE
        frame.pts = counter * AUDIO_FRAME_SAMPLES
        frame.time_base = Fraction(1, AUDIO_SAMPLE_RATE)
        return frame
