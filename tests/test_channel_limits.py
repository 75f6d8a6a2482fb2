"""The token bucket that paces each channel, on a clock the tests move."""

from __future__ import annotations

import asyncio
import time

import pytest

from channels.limits import TokenBucket


class ManualTime:
    """A clock that moves only when the bucket sleeps (or the test says so)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def bucket(rate: float, burst: int, manual: ManualTime) -> TokenBucket:
    return TokenBucket(rate, burst, manual.clock, sleep=manual.sleep)


def test_a_full_bucket_grants_its_burst_then_refills_at_the_rate() -> None:
    manual = ManualTime()
    limiter = bucket(10, 5, manual)

    assert limiter.try_acquire(8) == 5
    assert limiter.try_acquire() == 0
    manual.now += 0.25
    assert limiter.try_acquire(8) == 2
    manual.now += 3600
    assert limiter.try_acquire(100) == 5, "a long rest never holds more than the burst"


def test_a_clock_that_steps_back_grants_nothing_extra() -> None:
    manual = ManualTime()
    limiter = bucket(10, 2, manual)
    assert limiter.try_acquire(2) == 2

    manual.now -= 60
    assert limiter.try_acquire() == 0


async def test_acquire_waits_for_the_tokens_it_lacks() -> None:
    manual = ManualTime()
    limiter = bucket(2, 5, manual)

    await limiter.acquire(5)
    assert manual.slept == []
    await limiter.acquire(3)
    assert sum(manual.slept) == pytest.approx(1.5)


async def test_more_than_a_burst_is_taken_in_turns() -> None:
    manual = ManualTime()
    limiter = bucket(10, 10, manual)

    await limiter.acquire(25)
    assert sum(manual.slept) == pytest.approx(1.5)
    assert limiter.try_acquire() == 0


async def test_waiting_callers_are_served_in_the_order_they_came() -> None:
    manual = ManualTime()
    limiter = bucket(1, 4, manual)
    limiter.try_acquire(4)
    served: list[str] = []

    async def take(name: str, n: int) -> None:
        await limiter.acquire(n)
        served.append(name)

    await asyncio.gather(take("large", 4), take("small", 1), take("last", 1))
    assert served == ["large", "small", "last"]
    assert manual.now - 1000.0 == pytest.approx(6.0)


async def test_the_default_clock_paces_real_time() -> None:
    limiter = TokenBucket(200, 1)
    started = time.monotonic()
    for _ in range(21):
        await limiter.acquire()
    assert time.monotonic() - started >= 0.095


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (1, 0)])
def test_a_bucket_needs_a_positive_rate_and_burst(rate: float, burst: int) -> None:
    with pytest.raises(ValueError, match="positive rate"):
        TokenBucket(rate, burst)
