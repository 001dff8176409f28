"""The show page plays a live show fed by a test publisher (streaming.publisher over WHIP) in
headless Chromium through WHEP, and the buyer bids, leads and sees being outbid within a second;
then the seller's studio goes live from Chromium's fake camera through WHIP and the buyer plays it.
The scenario (video_scenario.py) runs in a loopback-only network namespace, like
tests/streaming/test_browser.py (tests/support/loopback_namespace.py says what that needs)."""

from __future__ import annotations

import pytest

from tests.conftest import TIMING_FACTOR
from tests.support.loopback_namespace import run_scenario


@pytest.mark.slow
def test_buyer_watches_a_published_show_bids_and_is_outbid() -> None:
    seen = run_scenario("tests.web.video_scenario", timeout_s=150 * TIMING_FACTOR)
    width, t1 = seen["video_before"]
    _, t2 = seen["video_after"]
    assert width > 0, seen
    assert t2 > t1, seen  # still playing
    assert seen["video_status"] == "connected", seen
    assert seen["leader"] == "Rival"
    assert seen["outbid_seen_s"] < 1.0 * TIMING_FACTOR, seen
    # The studio: the seller went live from the browser's camera (WHIP), a buyer watched it.
    assert seen["camera"]["show_live"] is True
    assert seen["camera"]["viewer_width"] > 0, seen
