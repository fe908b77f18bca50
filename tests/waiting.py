"""Waiting in tests: for something to happen, bounded in time. (To show that something did
not happen, wait for a later marker on the same ordered channel, then look.)"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any


async def eventually(
    condition: Callable[[], Any | Awaitable[Any]], within: float = 10, what: str = ""
) -> float:
    """Wait until `condition()` (a function or a coroutine function) is true; the seconds it
    took. Fails after `within` seconds."""
    started = time.monotonic()
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return time.monotonic() - started
        assert time.monotonic() - started < within, f"not within {within} s: {what or condition}"
        await asyncio.sleep(0.02)


def eventually_sync(condition: Callable[[], Any], within: float = 10, what: str = "") -> float:
    """`eventually` for threads and live servers: polls `condition()` until it is true."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < within, f"not within {within} s: {what or condition}"
        time.sleep(0.05)
    return time.monotonic() - started
