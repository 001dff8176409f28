"""The WHIP publisher CLI against a tiny aiortc peer: auth, moving stamped frames, DELETE."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from streaming.publisher import WhipError, parse_args, publish
from testkit.waiting import eventually
from tests.conftest import TIMING_FACTOR
from tests.streaming.peer import TOKEN, running_peer


@pytest.mark.slow
@pytest.mark.parametrize("codec", ["vp8", "h264"])
async def test_publishes_stamped_moving_frames_and_deletes(codec: str) -> None:
    async with running_peer() as peer:
        result = await publish(f"{peer.url}/whip", TOKEN, seconds=2.0 * TIMING_FACTOR,
                               codec=codec)
        # the DELETE closed the session: its track readers end once they read what came in
        await eventually(lambda: all(t.done() for t in peer.consumers), 5.0,
                         what="the peer reading the last frames")
    got = peer.received
    assert result.status == 201 and result.ended_by == "time"
    assert result.location == f"{peer.url}/session/1"
    assert got.authorization == [f"Bearer {TOKEN}"]
    assert got.deleted == [1]
    assert sorted(got.kinds) == ["audio", "video"]
    counters = [s.counter for s in got.stamps]
    assert len(counters) >= 30, counters
    assert counters == sorted(counters) and len(set(counters)) == len(counters)
    assert result.video_frames >= counters[-1] + 1
    assert got.audio_frames > 0
    # one machine, one clock: the painted capture time is a few frames old at most on receipt
    assert sorted(got.latencies_us)[len(got.latencies_us) // 2] < 500_000


async def test_a_refused_offer_is_an_error_with_the_servers_answer() -> None:
    async with running_peer() as peer:
        with pytest.raises(WhipError, match="401"):
            await publish(f"{peer.url}/whip", "wrong", seconds=1.0)
    assert peer.received.deleted == []


def test_cli_checks_its_arguments() -> None:
    assert parse_args(["http://127.0.0.1:1/whip", "--size", "1280x720"]).size == "1280x720"
    for bad in (["u", "--seconds", "0"], ["u", "--size", "7x7"], ["u", "--fps", "500"]):
        with pytest.raises(SystemExit):
            parse_args(bad)


def test_cli_reports_a_refusal_as_json_and_exit_1() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "streaming.publisher", "http://127.0.0.1:9/whip", "--token", "t",
         "--seconds", "1"], capture_output=True, text=True, timeout=60 * TIMING_FACTOR,
        check=False)
    assert done.returncode == 1, done.stderr
    assert "error" in json.loads(done.stdout.strip().splitlines()[-1])
