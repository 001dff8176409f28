"""The packet fan-out on its own: GOP cache for joiners, keyframe requests, bounded queues that
drop to the next keyframe, timestamp continuity across a publisher's reconnect."""

from __future__ import annotations

import asyncio

import pytest
from aiortc.mediastreams import MediaStreamError
from prometheus_client import CollectorRegistry

from streaming.metrics import StreamingMetrics
from streaming.relay import Fanout, ViewerTrack
from streaming.session import Codec

KEY, DELTA = b"\x10frame", b"\x11frame"  # VP8: bit 0 of the first byte clear = keyframe


def fanout(kind: str = "video") -> tuple[Fanout, list[str], StreamingMetrics]:
    codec = Codec("video", "vp8", 90000) if kind == "video" else Codec("audio", "opus", 48000)
    requests: list[str] = []
    metrics = StreamingMetrics(CollectorRegistry())
    return Fanout(codec, metrics, requests.append), requests, metrics


def viewer(f: Fanout, max_queue: int = 8) -> tuple[ViewerTrack, list[int]]:
    firsts: list[int] = []
    track = ViewerTrack(f, max_queue, lambda: firsts.append(1))
    f.add(track)
    return track, firsts


async def drain(track: ViewerTrack) -> list[tuple[bytes, int]]:
    out = []
    while track._queue:  # the test reads only what is queued
        packet = await track.recv()
        out.append((bytes(packet), int(packet.pts or 0)))
    return out


async def test_joiner_starts_at_the_cached_keyframe() -> None:
    f, requests, metrics = fanout()
    f.push(DELTA, 0)  # before any keyframe: nobody can start here
    f.push(KEY, 3000)
    f.push(DELTA, 6000)
    track, firsts = viewer(f)
    assert requests == []  # a fresh cache: no need to bother the publisher
    f.push(DELTA, 9000)
    got = await drain(track)
    assert [ts for _, ts in got] == [3000, 6000, 9000]
    assert got[0][0] == KEY and firsts == [1]
    assert metrics.frames_out.labels("video")._value.get() == 3


async def test_joiner_without_a_cache_waits_for_a_keyframe_and_asks_for_one() -> None:
    f, requests, _ = fanout()
    track, _ = viewer(f)
    assert requests == ["join"]
    f.push(DELTA, 0)
    assert await drain(track) == []
    f.push(KEY, 3000)
    f.push(DELTA, 6000)
    assert [ts for _, ts in await drain(track)] == [3000, 6000]


async def test_a_slow_viewer_drops_to_the_next_keyframe() -> None:
    f, requests, metrics = fanout()
    f.push(KEY, 0)
    slow, _ = viewer(f, max_queue=4)
    fast, _ = viewer(f, max_queue=100)
    for i in range(1, 6):
        f.push(DELTA, i * 3000)  # the 5th frame overflows the slow viewer's queue
    assert len(slow._queue) == 0 and slow.waiting_keyframe
    assert requests == ["overflow"]
    assert metrics.dropped_to_keyframe._value.get() == 1
    f.push(DELTA, 18000)
    f.push(KEY, 21000)
    assert [ts for _, ts in await drain(slow)] == [21000]
    assert len(await drain(fast)) == 8  # the other viewer lost nothing


async def test_audio_overflow_keeps_playing() -> None:
    f, requests, _ = fanout("audio")
    track, _ = viewer(f, max_queue=4)
    for i in range(6):
        f.push(b"opus", i * 960)
    assert [ts for _, ts in await drain(track)] == [3840, 4800]
    assert requests == []


async def test_timestamps_continue_across_a_reconnect() -> None:
    f, _, _ = fanout()
    track, _ = viewer(f, max_queue=100)
    f.push(KEY, 0)
    f.push(DELTA, 90000)
    f.new_source()  # the publisher reconnected: its clock starts at 0 again
    f.push(KEY, 0)
    f.push(DELTA, 3000)
    assert [ts for _, ts in await drain(track)] == [0, 90000, 93000, 96000]


async def test_viewer_requests_and_stop() -> None:
    f, requests, _ = fanout()
    f.push(KEY, 0)
    track, _ = viewer(f)
    track.request_keyframe()
    assert requests == ["viewer"]
    await drain(track)
    waiting = asyncio.ensure_future(track.recv())
    await asyncio.sleep(0)
    track.stop()
    with pytest.raises(MediaStreamError):
        await waiting
    assert track not in f.viewers
    f.push(KEY, 3000)  # no one left to offer it to
    f.close()
