"""The filters templates may use: Jinja2's own, each behind a guard.

Jinja2 calls filters directly, not through the sandbox's call hook, so each
one here is wrapped: the guard checks the render's deadline, turns a lazy
sequence (``map``, ``select``...) into a list of bounded length as it goes,
refuses a size argument (``center(10**9)``) or a text to work on that is
over the output limit, refuses an operation whose result would be (see
:mod:`core.templates.bounds`), and checks the size of what comes back.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

from jinja2.filters import FILTERS

from core.templates.bounds import (
    indent_bound,
    join_bound,
    printf_bound,
    replace_bound,
    wordwrap_bound,
)
from core.templates.budget import TooLarge, bounded_list, check_size, check_time, rendered_size

LEFT_OUT = frozenset({"attr", "pprint", "random"})
"""Not offered: ``attr`` (``value[name]`` does the same under the sandbox's checks),
``pprint`` (prints whole structures, for debugging), ``random`` (a preview or a test
would not show what customers get)."""

_WORK_ON_TEXT = frozenset(
    {
        "capitalize",
        "center",
        "e",
        "escape",
        "forceescape",
        "format",
        "indent",
        "join",
        "lower",
        "replace",
        "safe",
        "string",
        "striptags",
        "title",
        "tojson",
        "trim",
        "truncate",
        "upper",
        "urlencode",
        "urlize",
        "wordcount",
        "wordwrap",
        "xmlattr",
    }
)
"""Filters that turn their value and arguments into text, so their printed sizes must fit
(the bounds of :mod:`core.templates.bounds` may then turn them into text)."""

_SIZE_ARGUMENTS = frozenset({"batch", "center", "indent", "slice", "truncate", "wordwrap"})
"""Filters whose whole-number arguments are lengths or counts (elsewhere they are data,
as in ``default(0)``)."""

Bound = Callable[..., int]


def _bounds(ceiling: int) -> dict[str, Bound]:
    """Per filter, the longest text it could make from its arguments."""

    def join(value: Any, d: Any = "", attribute: Any = None) -> int:
        return join_bound(d, value, ceiling)

    def printf(value: Any, *args: Any, **kwargs: Any) -> int:
        return printf_bound(value, kwargs or args, ceiling)

    return {
        "format": printf,
        "indent": indent_bound,
        "join": join,
        "replace": replace_bound,
        "wordwrap": wordwrap_bound,
    }


def guarded_filters(max_chars: int, max_items: int) -> dict[str, Callable[..., Any]]:
    """Jinja2's filters but :data:`LEFT_OUT`, each guarded against the given limits."""
    bounds = _bounds(max_chars)
    return {
        name: _guard(name, function, bounds.get(name), max_chars, max_items)
        for name, function in FILTERS.items()
        if name not in LEFT_OUT
    }


def _guard(
    name: str,
    function: Callable[..., Any],
    bound: Bound | None,
    max_chars: int,
    max_items: int,
) -> Callable[..., Any]:
    # A filter that takes the environment or context first has its value second.
    at = 0 if getattr(function, "jinja_pass_arg", None) is None else 1
    on_text = name in _WORK_ON_TEXT
    sizes = name in _SIZE_ARGUMENTS

    @functools.wraps(function)  # keeps `jinja_pass_arg`, so Jinja2 passes the same arguments
    def guarded(*args: Any, **kwargs: Any) -> Any:
        check_time()
        if len(args) > at and isinstance(args[at], Iterator):
            args = (*args[:at], bounded_list(args[at], max_items), *args[at + 1 :])
        if sizes:
            for argument in (*args[at + 1 :], *kwargs.values()):
                if isinstance(argument, int) and abs(argument) > max_chars:
                    raise TooLarge(f"{name}({argument:,}) is over the limit of {max_chars:,}")
        if on_text:
            for argument in (*args[at:], *kwargs.values()):
                if rendered_size(argument, max_chars) > max_chars:
                    raise TooLarge(
                        f"the {name} filter was given more than {max_chars:,} characters"
                    )
        if bound is not None and bound(*args[at:], **kwargs) > max_chars:
            raise TooLarge(f"the {name} filter would make more than {max_chars:,} characters")
        result = function(*args, **kwargs)
        check_size(result, max_chars, max_items)
        return result

    return guarded
