"""Waiting for a condition instead of sleeping a fixed time: poll it until it holds or a
deadline passes, then fail saying what was awaited and what was seen last.

Timeouts are seconds on an ordinary machine, multiplied by TIMING_FACTOR (SOUK_TEST_TIMING):
slow machines (CI on 2 cores) get proportionally more time. A fixed sleep stays only where the
time itself is under test (waiting out a TTL or a rate-limit window, pacing a load); where such
a sleep is a threshold ("nothing more came in this long"), scale it with `scaled`.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

TIMING_FACTOR = float(os.environ.get("SOUK_TEST_TIMING", "1.0"))

T = TypeVar("T")


def scaled(seconds: float) -> float:
    """`seconds` on an ordinary machine, for this one."""
    return seconds * TIMING_FACTOR


async def eventually(check: Callable[[], T | Awaitable[T]], timeout_s: float = 10.0, *,
                     step: float = 0.02, what: str = "") -> T:
    """Call `check()` (awaiting it if it is a coroutine function's result) until it returns
    something truthy, and return that; raise AssertionError after `scaled(timeout_s)` seconds."""
    deadline = time.monotonic() + scaled(timeout_s)
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            raise AssertionError(_failure(check, what, timeout_s, value))
        await asyncio.sleep(step)


def wait_until(check: Callable[[], T], timeout_s: float = 10.0, *, step: float = 0.05,
               what: str = "") -> T:
    """`eventually` for synchronous code (a thread, a browser driver, a subprocess)."""
    deadline = time.monotonic() + scaled(timeout_s)
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(_failure(check, what, timeout_s, value))
        time.sleep(step)


def _failure(check: Callable[..., Any], what: str, timeout_s: float, last: Any) -> str:
    name = what or getattr(check, "__qualname__", repr(check))
    return f"{name}: not true after {scaled(timeout_s):.1f} s (last value: {last!r})"
