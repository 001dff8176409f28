"""What a position fix is, why one is dropped, and the filter limits (pure: no I/O).

A `Fix` is one location report of one rider's phone, in SI units: degrees, epoch milliseconds,
metres per second, metres. Whatever the transport (the websocket `location` op, OsmAnd query,
form or JSON body), it becomes a `Fix` before any rule looks at it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

KNOT_MPS = 1852.0 / 3600.0  # one knot in metres per second


class Drop(enum.StrEnum):
    """Why a fix was not accepted (the `reason` label of the dropped-fixes metric)."""

    OUT_OF_RANGE = "out_of_range"  # latitude/longitude outside the earth (or Redis GEO's band)
    ZERO = "zero"  # exactly (0, 0): a phone without a fix
    FUTURE = "future"  # timestamp ahead of the server clock beyond the tolerance
    TOO_OLD = "too_old"  # timestamp older than the maximum age
    DUPLICATE = "duplicate"  # same timestamp as the last accepted fix
    OUT_OF_ORDER = "out_of_order"  # older than the last accepted fix
    SPEED = "speed"  # implied speed from the last accepted fix above the limit
    ACCURACY = "accuracy"  # reported accuracy radius worse than the limit


@dataclass(frozen=True, slots=True)
class Fix:
    lat: float
    lon: float
    ts_ms: int  # device time, epoch milliseconds
    speed_mps: float | None = None
    heading: float | None = None
    accuracy_m: float | None = None
    altitude_m: float | None = None


@dataclass(frozen=True, slots=True)
class Limits:
    """The filters' limits (settings TRACKING_*)."""

    max_speed_mps: float = 55.0  # ~200 km/h: anything faster between two fixes is a GPS jump
    max_accuracy_m: float = 100.0
    future_tolerance_ms: int = 60_000
    max_age_ms: int = 6 * 3600 * 1000
    # A jump is judged over at least this time (two fixes a few ms apart would otherwise look
    # supersonic) ...
    min_gap_ms: int = 1_000
    # ... and with this allowance for GPS noise (metres a standing phone wanders).
    noise_m: float = 30.0

    def allowed_m(self, gap_ms: int) -> float:
        """The farthest a rider may move in `gap_ms` (the speed rule's bound)."""
        return self.max_speed_mps * max(gap_ms, self.min_gap_ms) / 1000.0 + self.noise_m


# Redis GEO accepts latitudes within the Web Mercator band only.
GEO_MAX_LAT = 85.05112878


def online_since_ms(now_ms: int, offline_s: int) -> int:
    """The oldest last-heard time (server ms) of a rider still online: heard from within
    `offline_s` seconds of `now_ms` (the TRACKING_OFFLINE_S rule)."""
    return now_ms - offline_s * 1000
