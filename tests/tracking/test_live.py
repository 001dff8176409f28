"""The live view's conditional save: one round trip, refused when another writer got there
first or Redis lost the entry (both the script and the cluster's step-by-step path)."""

from __future__ import annotations

import uuid

import pytest

from core.context import Runtime
from tracking.live import Live
from tracking.model import Fix


@pytest.mark.parametrize("cluster_steps", [False, True])
async def test_save_is_conditional_on_the_fix_judged_against(
    rt: Runtime, cluster_steps: bool
) -> None:
    live = Live(rt.redis, rt.settings.redis_prefix)
    live._cluster = cluster_steps
    rider = uuid.uuid4()
    a, b, c = Fix(52.5, 13.4, 1_000), Fix(52.5001, 13.4, 2_000), Fix(52.5002, 13.4, 3_000)
    first = await live.save(rider, a, judged_against=None, ewma=None, available=True,
                            now_ms=10)
    assert first is not None and first.available is True and first.job_known is False
    assert await live.save(rider, b, judged_against=None, ewma=None, available=True,
                           now_ms=11) is None  # someone wrote `a` since "nothing"
    assert await live.save(rider, b, judged_against=a, ewma=1.0, available=True,
                           now_ms=12) is not None
    assert await live.save(rider, c, judged_against=a, ewma=1.0, available=True,
                           now_ms=13) is None  # stale: `b` is the last now
    state = await live.state(rider)
    assert state.last is not None and state.last.ts_ms == 2_000 and state.ewma == 1.0
    found = await live.nearest(52.5, 13.4, 500, 10, fresh_after_ms=0)
    assert [r for r, _ in found] == [rider]

    await live.set_available(rider, False)  # another process may do this: the save obeys it
    saved = await live.save(rider, c, judged_against=b, ewma=1.0, available=True, now_ms=14)
    assert saved is not None and saved.available is False
    assert await live.nearest(52.5, 13.4, 500, 10, fresh_after_ms=0) == []

    await rt.redis.delete(live.state_key(rider))  # Redis lost the entry
    assert await live.save(rider, Fix(52.5, 13.4, 4_000), judged_against=c, ewma=None,
                           available=True, now_ms=15) is None
