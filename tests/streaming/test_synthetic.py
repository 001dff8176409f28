"""The synthetic source's stamps survive painting, a real encode and decode, and are checked."""

from __future__ import annotations

from fractions import Fraction

import av
import pytest

from streaming.synthetic import (
    BITS,
    AudioPainter,
    Stamp,
    VideoPainter,
    bits_to_stamp,
    latency_us,
    parse_size,
    read_stamp,
    stamp_bits,
)


def test_bits_round_trip_and_crc_rejects_a_flipped_bit() -> None:
    stamp = Stamp(counter=123_456, capture_us=1_765_000_000_123_456)
    bits = stamp_bits(stamp)
    assert len(bits) == BITS
    assert bits_to_stamp(bits) == Stamp(123_456, stamp.capture_us % (1 << 48))
    for position in (3, 20, 60, 95):
        flipped = list(bits)
        flipped[position] ^= 1
        assert bits_to_stamp(flipped) is None
    assert bits_to_stamp(bits[:-1]) is None


@pytest.mark.parametrize(("width", "height"), [(640, 480), (1280, 720), (320, 240)])
def test_painted_frame_reads_back(width: int, height: int) -> None:
    painter = VideoPainter(width, height)
    frame = painter.frame(7, 99_000_001)
    assert (frame.width, frame.height, frame.format.name) == (width, height, "yuv420p")
    assert frame.pts == 7 * 3000 and frame.time_base == Fraction(1, 90_000)
    assert read_stamp(frame) == Stamp(7, 99_000_001)


def test_picture_moves_between_frames() -> None:
    painter = VideoPainter(640, 480)
    first, second = (bytes(painter.frame(n, 0).planes[0]) for n in (0, 1))
    band = 3 * 16 * 640
    assert first[band:] != second[band:]
    assert read_stamp(painter.frame(1, 0)) == Stamp(1, 0)


def test_grey_picture_has_no_stamp() -> None:
    frame = av.VideoFrame(640, 480, "yuv420p")
    for plane in frame.planes:
        plane.update(bytes([128]) * plane.buffer_size)
    assert read_stamp(frame) is None


@pytest.mark.parametrize(("codec", "size"), [("libx264", (640, 480)), ("libvpx", (1280, 720))])
def test_stamps_survive_a_lossy_encode(codec: str, size: tuple[int, int]) -> None:
    width, height = size
    encoder = av.CodecContext.create(codec, "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.time_base = Fraction(1, 90_000)
    encoder.bit_rate = 500_000  # a WebRTC sender's usual start
    encoder.framerate = Fraction(30, 1)
    decoder = av.CodecContext.create("h264" if codec == "libx264" else "vp8", "r")
    painter = VideoPainter(width, height)
    read: list[Stamp | None] = []
    frames = [painter.frame(n, 1_000_000 + n * 33_333) for n in range(12)]
    packets = [p for f in frames for p in encoder.encode(f)] + list(encoder.encode(None))
    for packet in [*packets, None]:
        read.extend(read_stamp(decoded) for decoded in decoder.decode(packet))
    assert read == [Stamp(n, 1_000_000 + n * 33_333) for n in range(12)]


def test_yuv_other_formats_are_read_too() -> None:
    frame = VideoPainter(640, 480).frame(5, 42).reformat(format="rgb24")
    assert read_stamp(frame) == Stamp(5, 42)


def test_latency_wraps_with_the_modulus() -> None:
    assert latency_us(Stamp(0, (1 << 48) - 10), 5) == 15
    assert latency_us(Stamp(0, 1_000), 4_000) == 3_000


def test_sizes_parse_and_bad_ones_are_refused() -> None:
    assert parse_size("1280x720") == (1280, 720)
    for bad in ("640", "641x480", "99999x480", "axb"):
        with pytest.raises(ValueError, match="size"):
            parse_size(bad)


def test_audio_frames_are_20ms_of_tone() -> None:
    frame = AudioPainter().frame(3)
    assert (frame.samples, frame.sample_rate, frame.format.name) == (960, 48_000, "s16")
    assert frame.pts == 3 * 960
    assert any(bytes(frame.planes[0]))
