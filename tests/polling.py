"""Waiting in a test for something that happens in the background (a worker sending, a
server starting), with a deadline so that a test never hangs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

INTERVAL_SECONDS = 0.02


async def eventually(
    check: Callable[[], Awaitable[bool]], what: str, *, seconds: float = 30.0
) -> None:
    """Return as soon as ``check`` passes; fail saying ``what`` did not happen in time."""
    for _ in range(round(seconds / INTERVAL_SECONDS)):
        if await check():
            return
        await asyncio.sleep(INTERVAL_SECONDS)
    raise AssertionError(f"not within {seconds} seconds: {what}")
