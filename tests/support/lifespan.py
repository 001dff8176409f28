"""The one place that reads asgi-lifespan's private state.

`LifespanManager` (asgi-lifespan 2.1) keeps the state the app's lifespan yielded in `_state` and
has no public accessor; the tests read the running app's Runtime from it. `RELIED_ON` names what
is read; tests/core/test_lifespan_state.py fails naming it if an upgrade changed it
(pyproject.toml pins the tested range).
"""

from __future__ import annotations

from typing import Any

from asgi_lifespan import LifespanManager

RELIED_ON: tuple[str, ...] = ("_state",)

# asgi-lifespan's defaults (5 s each way) are shorter than a loaded 2-core box needs: CI saw a
# shutdown (pool, hub, relay, aiortc and Redis closed in turn) pass 5 s while Chromium and two
# test workers shared the cores. Start-up and shutdown are each still bounded.
STARTUP_TIMEOUT_S = 60.0
SHUTDOWN_TIMEOUT_S = 60.0


def started(app: Any) -> LifespanManager:
    """A lifespan manager for `app` with the suite's start-up and shutdown bounds."""
    return LifespanManager(app, startup_timeout=STARTUP_TIMEOUT_S,
                           shutdown_timeout=SHUTDOWN_TIMEOUT_S)


def lifespan_state(manager: LifespanManager) -> dict[str, Any]:
    """The state the app's lifespan yielded (the manager must be entered)."""
    state: dict[str, Any] = manager._state
    return state
