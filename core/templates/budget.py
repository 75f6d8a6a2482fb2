"""What one render may spend: time until a deadline, and room for what it builds.

Every guard of the sandbox (loops, calls, operators, filters, joins) asks
here before it works. The deadline lives in a context variable set by the
render that is under way, so a guard needs no reference to the render and a
template has no way to reach it. Sizes are bounded against a ceiling given
by the caller: characters for text, items for lists.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator, Mapping, MappingView, Sequence, Set
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any, cast

MAX_INT_BITS = 8_192
"""Integers a template computes stay below 2**8192 (about 2,500 digits): enough for any
price or count, far below what makes arithmetic or printing slow."""


class TemplateLimitError(Exception):
    """A template went past one of its limits; :attr:`reason` says which, for the message."""

    reason = "over a limit"


class TooLarge(TemplateLimitError):
    reason = "too large"


class TooSlow(TemplateLimitError):
    reason = "too slow"


@dataclass(frozen=True, slots=True)
class _Deadline:
    """A render's time: ``timeout_ms`` of the rendering thread's CPU.

    CPU time, not time on the wall: on a busy host a render that waited for the CPU
    must not fail an innocent message (it did, at a load of four per core). The
    thread's CPU clock is a system call, so the guards watch the cheap wall clock
    and read the CPU clock only once the wall has passed ``at``.
    """

    at: float
    """``time.perf_counter()`` value after which the CPU clock is read."""
    cpu_at: float
    """``time.thread_time()`` value after which the render must stop."""
    timeout_ms: int


_NO_DEADLINE = _Deadline(math.inf, math.inf, 0)
_deadline: ContextVar[_Deadline] = ContextVar("cadence_template_deadline", default=_NO_DEADLINE)


def start_deadline(timeout_ms: int) -> Token[_Deadline]:
    """Make the guards stop a render after ``timeout_ms`` of its CPU time from now, until
    :func:`end_deadline` (a plain pair of calls: a render costs microseconds, a context
    manager would add a tenth of it)."""
    budget = timeout_ms / 1000
    deadline = _Deadline(time.perf_counter() + budget, time.thread_time() + budget, timeout_ms)
    return _deadline.set(deadline)


def end_deadline(token: Token[_Deadline]) -> None:
    _deadline.reset(token)


def check_time() -> None:
    """Raise :class:`TooSlow` once the render under way has used up its time."""
    current = _deadline.get()
    if time.perf_counter() > current.at:
        _check_cpu(current)


def timed(items: Any) -> Iterator[Any]:
    """The items of ``items``, checking the deadline before each one (loops that print
    nothing and call nothing would otherwise run unchecked)."""
    at = _deadline.get().at
    clock = time.perf_counter
    for item in items:
        if clock() > at:
            _check_cpu(_deadline.get())
            at = _deadline.get().at
        yield item


def _check_cpu(current: _Deadline) -> None:
    """The wall clock passed the deadline: :class:`TooSlow` if the render's CPU time is up
    too, else the wall deadline moves to where the CPU time left would end."""
    left = current.cpu_at - time.thread_time()
    if left <= 0:
        raise TooSlow(f"rendering took longer than {current.timeout_ms} ms")
    _deadline.set(_Deadline(time.perf_counter() + left, current.cpu_at, current.timeout_ms))


def rendered_size(value: Any, ceiling: int) -> int:
    """About how many characters ``str(value)`` makes, at least; counting stops as soon as
    it passes ``ceiling``, so the cost is bounded however deep ``value`` is.

    A list that holds the same long text many times is small in memory and
    enormous once printed; this is what tells the two apart.
    """
    if isinstance(value, str | bytes):
        return len(value)
    total = 0
    pending = [value]
    while pending and total <= ceiling:
        item = pending.pop()
        kind = type(item)
        # Exact types first: a list of 100,000 numbers is walked in milliseconds.
        if kind is str:
            total += len(item) + 4  # quotes and a separator
        elif kind is int:
            total += item.bit_length() // 3 + 2
        elif kind is float or kind is bool or item is None:
            total += 8
        elif kind is list or kind is tuple:
            total += 2
            pending.extend(item)
        elif isinstance(item, str | bytes):
            total += len(item) + 4
        elif isinstance(item, Mapping):
            total += 2
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, Sequence | Set | MappingView) and not isinstance(item, range):
            total += 2
            pending.extend(cast(Iterable[Any], item))
        else:
            total += 64  # an object's repr: a name and an address
    return total


def check_size(value: Any, max_chars: int, max_items: int) -> None:
    """Raise :class:`TooLarge` if ``value`` is text longer than ``max_chars`` or a
    collection of more than ``max_items`` items."""
    if isinstance(value, str | bytes):
        if len(value) > max_chars:
            raise TooLarge(f"a text of {len(value):,} characters is over {max_chars:,}")
    elif (
        isinstance(value, Sequence | Mapping | Set)
        and not isinstance(value, range)
        and len(value) > max_items
    ):
        raise TooLarge(f"a list of {len(value):,} items is over {max_items:,}")


def bounded_list(items: Any, max_items: int) -> list[Any]:
    """The items of an iterator as a list, checking the deadline on the way and refusing
    more than ``max_items`` (a lazy filter chain becomes a list the next guard can size)."""
    collected = []
    for item in timed(items):
        collected.append(item)
        if len(collected) > max_items:
            raise TooLarge(f"a sequence of more than {max_items:,} items")
    return collected
