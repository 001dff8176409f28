"""Which fixes are kept (pure: no I/O, the server clock enters as an argument).

`check(fix, last, now_ms, limits)` judges one fix against the last *accepted* fix of the same
rider. The rules, in order (the first that fails names the reason):

1. coordinates out of range (and outside Redis GEO's latitude band), NaN or infinite;
2. exactly (0, 0) — what phones send without a fix;
3. accuracy radius worse than `max_accuracy_m` (when reported);
4. timestamp more than `future_tolerance_ms` ahead of the server clock;
5. timestamp older than `max_age_ms`;
6. same timestamp as the last accepted fix (a retried request) → duplicate;
7. older than the last accepted fix → out of order;
8. moved farther from the last accepted fix than `max_speed_mps` allows in the time between
   them (at least `min_gap_ms`), plus `noise_m` of GPS noise (`Limits.allowed_m`).

Because every accepted fix is strictly newer than the previous accepted one and within the speed
limit from it, an accepted sequence never reverses time nor jumps faster than the limit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from tracking.geo import distance_m
from tracking.model import GEO_MAX_LAT, Drop, Fix, Limits


def check(fix: Fix, last: Fix | None, now_ms: int, limits: Limits) -> Drop | None:
    """None when `fix` is accepted, else the reason it is dropped."""
    if not (math.isfinite(fix.lat) and math.isfinite(fix.lon)) or not (
        -GEO_MAX_LAT <= fix.lat <= GEO_MAX_LAT and -180.0 <= fix.lon <= 180.0
    ):
        return Drop.OUT_OF_RANGE
    if fix.lat == 0.0 and fix.lon == 0.0:
        return Drop.ZERO
    if fix.accuracy_m is not None and not (0 <= fix.accuracy_m <= limits.max_accuracy_m):
        return Drop.ACCURACY
    if fix.ts_ms > now_ms + limits.future_tolerance_ms:
        return Drop.FUTURE
    if fix.ts_ms < now_ms - limits.max_age_ms:
        return Drop.TOO_OLD
    if last is None:
        return None
    if fix.ts_ms == last.ts_ms:
        return Drop.DUPLICATE
    if fix.ts_ms < last.ts_ms:
        return Drop.OUT_OF_ORDER
    if distance_m(last.lat, last.lon, fix.lat, fix.lon) > limits.allowed_m(fix.ts_ms - last.ts_ms):
        return Drop.SPEED
    return None


def accepted(fixes: Iterable[Fix], now_ms: int, limits: Limits,
             last: Fix | None = None) -> list[Fix]:
    """The fixes of a sequence that `check` keeps, each judged against the previous kept one."""
    out: list[Fix] = []
    for fix in fixes:
        if check(fix, last, now_ms, limits) is None:
            out.append(fix)
            last = fix
    return out
