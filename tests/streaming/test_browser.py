"""Real clients no one here wrote: headless Chromium publishing (WHIP) and playing (WHEP).

The scenario (browser_scenario.py) runs in a loopback-only network namespace of its own
(tests/support/loopback_namespace.py says what that needs); this test starts it and checks what
it saw.
"""

from __future__ import annotations

import pytest

from tests.conftest import TIMING_FACTOR
from tests.support.loopback_namespace import run_scenario


@pytest.mark.slow
def test_chromium_publishes_with_whip_and_plays_with_whep() -> None:
    seen = run_scenario("tests.streaming.browser_scenario", timeout_s=180 * TIMING_FACTOR)

    browsers = seen["chromium_to_chromium"]
    assert browsers["whip"]["status"] == 201 and browsers["whip"]["connection"] == "connected"
    assert browsers["whep"]["status"] == 201 and browsers["whep"]["error"] is None
    assert browsers["whep"]["rendered"] >= 10  # requestVideoFrameCallback fired
    before, after = browsers["decoded_before"], browsers["decoded_after"]
    assert after["framesDecoded"] >= before["framesDecoded"] + 10, browsers  # still playing
    assert (after["width"], after["height"]) == (640, 480)
    assert after["audioPackets"] > before["audioPackets"]
    assert browsers["publisher_encoded"] > 0

    painted = seen["synthetic_to_chromium"]
    assert painted["status"] == 201 and painted["stamps"] >= 90, painted
    assert painted["lastCounter"] > 60  # frames kept coming, read back from the canvas
    assert painted["latency_n"] >= 30 and painted["latency_p50_ms"] < 1000, painted
