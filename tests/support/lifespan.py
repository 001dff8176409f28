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


def lifespan_state(manager: LifespanManager) -> dict[str, Any]:
    """The state the app's lifespan yielded (the manager must be entered)."""
    state: dict[str, Any] = manager._state
    return state
