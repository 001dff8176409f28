"""Distances and arrival estimates on a sphere (pure)."""

from __future__ import annotations

import math

EARTH_RADIUS_M = 6_372_797.560856  # the radius Redis GEO uses, so distances agree with it


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle (haversine) distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def blend_speed(previous: float | None, sample: float | None, weight: float = 0.3) -> float | None:
    """Recent speed as an exponentially weighted average of the samples (m/s)."""
    if sample is None or sample < 0 or math.isnan(sample):
        return previous
    if previous is None:
        return sample
    return previous + weight * (sample - previous)


def eta_s(remaining_m: float, speed_mps: float | None, *, min_speed_mps: float) -> int | None:
    """Seconds to cover `remaining_m` at the recent speed (never slower than `min_speed_mps`,
    a rider stopped at a light still arrives); None when nothing is known about speed."""
    if speed_mps is None:
        return None
    return round(remaining_m / max(speed_mps, min_speed_mps))
