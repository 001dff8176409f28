"""Every filter rule, one test each, and the properties of accepted sequences."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracking.filters import accepted, check
from tracking.geo import distance_m, eta_s
from tracking.model import Drop, Fix, Limits

NOW = 1_765_000_000_000
LIM = Limits()
BERLIN = Fix(52.52, 13.405, NOW - 10_000, accuracy_m=8.0)


def at(fix: Fix, *, dt_ms: int = 0, dlat: float = 0.0, dlon: float = 0.0, **kw: float) -> Fix:
    return Fix(fix.lat + dlat, fix.lon + dlon, fix.ts_ms + dt_ms, **kw)


def test_a_plausible_first_and_next_fix_are_accepted() -> None:
    assert check(BERLIN, None, NOW, LIM) is None
    assert check(at(BERLIN, dt_ms=5_000, dlat=0.001), BERLIN, NOW, LIM) is None  # 111 m in 5 s


@pytest.mark.parametrize(("lat", "lon"), [(91.0, 0.5), (-90.5, 10.0), (50.0, 180.5), (50.0, -181.0),
                                      (86.0, 10.0), (math.nan, 1.0), (1.0, math.inf)])
def test_out_of_range_coordinates(lat: float, lon: float) -> None:
    assert check(Fix(lat, lon, NOW), None, NOW, LIM) is Drop.OUT_OF_RANGE


def test_zero_zero_is_no_fix() -> None:
    assert check(Fix(0.0, 0.0, NOW), None, NOW, LIM) is Drop.ZERO
    assert check(Fix(0.0, 0.0001, NOW), None, NOW, LIM) is None  # the equator is a place


def test_future_beyond_tolerance() -> None:
    assert check(Fix(1.0, 1.0, NOW + LIM.future_tolerance_ms), None, NOW, LIM) is None
    assert check(Fix(1.0, 1.0, NOW + LIM.future_tolerance_ms + 1), None, NOW, LIM) is Drop.FUTURE


def test_too_old() -> None:
    assert check(Fix(1.0, 1.0, NOW - LIM.max_age_ms), None, NOW, LIM) is None
    assert check(Fix(1.0, 1.0, NOW - LIM.max_age_ms - 1), None, NOW, LIM) is Drop.TOO_OLD


def test_duplicate_and_out_of_order() -> None:
    assert check(at(BERLIN, dlat=0.0001), BERLIN, NOW, LIM) is Drop.DUPLICATE
    assert check(at(BERLIN, dt_ms=-1), BERLIN, NOW, LIM) is Drop.OUT_OF_ORDER


def test_implausible_jump() -> None:
    # 1 km in 10 s is 100 m/s: above 55 m/s.
    far = at(BERLIN, dt_ms=10_000, dlat=1_000 / 111_195)
    assert check(far, BERLIN, NOW, LIM) is Drop.SPEED
    assert check(far, BERLIN, NOW, Limits(max_speed_mps=120.0)) is None
    # GPS noise between fixes a few ms apart is not a jump ...
    assert check(at(BERLIN, dt_ms=5, dlat=20 / 111_195), BERLIN, NOW, LIM) is None
    # ... but teleporting 200 m in 5 ms is.
    assert check(at(BERLIN, dt_ms=5, dlat=200 / 111_195), BERLIN, NOW, LIM) is Drop.SPEED


def test_poor_accuracy() -> None:
    assert check(Fix(1.0, 1.0, NOW, accuracy_m=100.0), None, NOW, LIM) is None
    assert check(Fix(1.0, 1.0, NOW, accuracy_m=100.5), None, NOW, LIM) is Drop.ACCURACY
    assert check(Fix(1.0, 1.0, NOW, accuracy_m=None), None, NOW, LIM) is None


def test_dropped_fixes_do_not_move_the_reference() -> None:
    jump = at(BERLIN, dt_ms=1_000, dlat=0.5)
    back = at(BERLIN, dt_ms=2_000, dlat=0.0002)
    assert accepted([BERLIN, jump, back], NOW, LIM) == [BERLIN, back]


def test_distance_and_eta() -> None:
    assert distance_m(52.52, 13.405, 52.52, 13.405) == 0
    assert 111_000 < distance_m(0, 0, 1, 0) < 111_300
    assert eta_s(1_000, 10.0, min_speed_mps=2.0) == 100
    assert eta_s(1_000, 0.0, min_speed_mps=2.0) == 500
    assert eta_s(1_000, None, min_speed_mps=2.0) is None


fixes = st.builds(
    Fix,
    lat=st.floats(52.4, 52.6), lon=st.floats(13.3, 13.5),
    ts_ms=st.integers(NOW - 7 * 3600 * 1000, NOW + 120_000),
    accuracy_m=st.none() | st.floats(0, 300),
)
limits = st.builds(Limits, max_speed_mps=st.floats(1, 100), min_gap_ms=st.integers(1, 5_000),
                   noise_m=st.floats(0, 100))


@given(st.lists(fixes, max_size=40), limits)
def test_accepted_sequences_never_reverse_time_nor_jump(seq: list[Fix], lim: Limits) -> None:
    kept = accepted(seq, NOW, lim)
    for prev, nxt in itertools.pairwise(kept):
        assert nxt.ts_ms > prev.ts_ms
        moved = distance_m(prev.lat, prev.lon, nxt.lat, nxt.lon)
        assert moved <= lim.allowed_m(nxt.ts_ms - prev.ts_ms)
    for fix in kept:
        assert NOW - lim.max_age_ms <= fix.ts_ms <= NOW + lim.future_tolerance_ms
        assert fix.accuracy_m is None or fix.accuracy_m <= lim.max_accuracy_m


@given(st.lists(fixes, max_size=30), limits)
def test_filtering_again_changes_nothing(seq: list[Fix], lim: Limits) -> None:
    kept = accepted(seq, NOW, lim)
    assert accepted(kept, NOW, lim) == kept
