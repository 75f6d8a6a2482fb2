"""How fast a channel may send: a token bucket.

The bucket holds up to ``burst`` tokens and gains ``rate_per_second`` of
them a second; each message takes one. After a quiet spell a burst goes at
once, and over any longer stretch the average stays under the rate. The
delivery worker keeps one bucket per channel (the hourly ceiling across
nodes lives in the store, not here).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable


class TokenBucket:
    """Up to ``burst`` messages at once, ``rate_per_second`` on average.

    ``clock`` tells the time in seconds (any origin) and ``sleep`` waits; both
    can be replaced so that tests control time.
    """

    def __init__(
        self,
        rate_per_second: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate_per_second <= 0 or burst < 1:
            raise ValueError(
                f"a token bucket needs a positive rate and a burst of at least 1, "
                f"not {rate_per_second}/s and {burst}"
            )
        self.rate_per_second = rate_per_second
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._updated = clock()
        self._turn = asyncio.Lock()

    def try_acquire(self, n: int = 1) -> int:
        """Take up to ``n`` tokens now, without waiting; how many were taken."""
        self._refill()
        granted = min(n, math.floor(self._tokens))
        if granted > 0:
            self._tokens -= granted
        return max(granted, 0)

    async def acquire(self, n: int = 1) -> None:
        """Take ``n`` tokens, waiting for them as long as needed.

        More than ``burst`` is taken in turns of at most ``burst``. Callers are
        served in the order they came, so a large request is not starved by
        small ones.
        """
        async with self._turn:
            remaining = n
            while remaining > 0:
                remaining -= self.try_acquire(min(remaining, self.burst))
                if remaining > 0:
                    wanted = min(remaining, self.burst)
                    await self._sleep((wanted - self._tokens) / self.rate_per_second)

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._updated)
        self._updated = now
        self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate_per_second)
