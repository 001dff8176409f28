"""Stopping background tasks so that shutdown always ends.

On Python 3.11, `asyncio.wait_for` returns the awaited result and drops a cancellation that
lands as the awaited call completes (fixed in 3.12). Libraries call it on hot paths (redis-py
around every command sent when a socket timeout is set), so a loop that cancels once and then
awaits the task can wait for ever: the task carries on as if never asked to stop. `stop()`
cancels again until the task ends, logs each task that needed it, and gives up after a bound,
so one stuck task cannot hold a process's shutdown. `report_if_stuck()` logs every pending
task's stack when a shutdown takes too long, to name what held it.
"""

from __future__ import annotations

import asyncio
import io
import logging
from typing import Any

log = logging.getLogger("souk.tasks")

GRACE_S = 3.0  # how long a cancelled task is given before it is cancelled again
ATTEMPTS = 5  # cancellations before a task is left behind (logged as an error)


def _stack(task: asyncio.Task[Any]) -> str:
    out = io.StringIO()
    task.print_stack(limit=12, file=out)
    return out.getvalue()


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Log what an ended task raised (other than its cancellation); never raise it."""
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.error("background task had failed", extra={"task": task.get_name()},
                  exc_info=(type(exc), exc, exc.__traceback__))


async def stop(*tasks: asyncio.Task[Any], finish_within_s: float = 0.0,
               grace_s: float = GRACE_S, attempts: int = ATTEMPTS) -> list[asyncio.Task[Any]]:
    """Wait up to `finish_within_s` for `tasks` to end by themselves (for tasks already asked
    to stop), then cancel those still running and wait until they end; a task still running
    `grace_s` after a cancellation is cancelled again, up to `attempts` times. Returns the
    tasks left running (normally none). What a task raised other than its cancellation is
    logged, not raised."""
    pending = {t for t in tasks if not t.done()}
    if pending and finish_within_s > 0:
        _, pending = await asyncio.wait(pending, timeout=finish_within_s)
    for t in tasks:
        if t.done():
            _retrieve(t)
    for attempt in range(1, attempts + 1):
        if not pending:
            break
        for t in pending:
            t.cancel()
        done, pending = await asyncio.wait(pending, timeout=grace_s)
        for t in done:
            _retrieve(t)
        for t in pending:
            log.warning("background task ignored its cancellation", extra={
                "task": t.get_name(), "attempt": attempt, "stack": _stack(t)})
    for t in pending:
        log.error("background task left running at shutdown", extra={"task": t.get_name()})
    return sorted(pending, key=lambda t: t.get_name())


async def report_if_stuck(after_s: float, what: str) -> None:
    """Sleep `after_s`, then log every pending task with its stack (run as a task beside a
    shutdown and cancel it when the shutdown ends)."""
    await asyncio.sleep(after_s)
    me = asyncio.current_task()
    stacks = {t.get_name(): _stack(t) for t in asyncio.all_tasks() if t is not me}
    log.warning("%s still running after %g s", what, after_s, extra={"tasks": stacks})
