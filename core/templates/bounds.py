"""How long a text an operation would make, worked out before it runs.

The sandbox refuses an operation whose result would pass the output limit
*before* building it: ``'%s%s%s' % (big, big, big)``, ``s.replace('a', big)``
or ``'\\n' * n | indent(n)`` would otherwise take the memory first and be
refused after. Each bound is an upper estimate that costs far less than the
operation itself. The callers have checked that every argument prints
within the limit (:func:`core.templates.budget.rendered_size`), so a bound
may turn one into text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sized
from typing import Any

from markupsafe import Markup

from core.templates.budget import rendered_size

_ESCAPED_GROWTH = 6
"""The most one character grows when HTML-escaped: ``'`` becomes ``&#39;``."""

_CONVERSION = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?(.)", re.DOTALL)
"""One printf-style conversion: ``%s``, ``%(name)-10.3f``, ``%*d``..."""


def printf_bound(template: Any, values: Any, ceiling: int) -> int:
    """The longest ``template % values`` can be (``%`` on text and the format filter)."""
    text = str(template)
    items = (
        list(values.values())
        if isinstance(values, Mapping)
        else list(values)
        if isinstance(values, tuple)
        else [values]
    )
    widest = max((rendered_size(item, ceiling) for item in items), default=0)
    if isinstance(template, Markup):
        widest *= _ESCAPED_GROWTH
    conversions, width = 0, 0
    for match in _CONVERSION.finditer(text):
        conversions += 1
        for number in match.group(1, 2):
            if number == "*":  # the width is one of the values
                width = max([width, *(abs(i) for i in items if isinstance(i, int))])
            elif number:
                width = max(width, int(number) if len(number) < 10 else ceiling + 1)
    return len(text) + conversions * (widest + width)


def replace_bound(text: Any, old: Any, new: Any, count: Any = None) -> int:
    """The longest ``text.replace(old, new, count)`` can be (the method and the filter)."""
    value, before, after = str(text), str(old), str(new)
    occurrences = value.count(before) if before else len(value) + 1
    if isinstance(count, int) and count >= 0:
        occurrences = min(occurrences, count)
    return len(value) + occurrences * max(len(after) - len(before), 0)


def join_bound(separator: Any, items: Any, ceiling: int) -> int:
    """The longest ``separator.join(items)`` can be (the method and the join filter)."""
    count = len(items) if isinstance(items, Sized) else 0
    separators = len(str(separator)) * max(count - 1, 0)
    if separators > ceiling:
        return separators
    return separators + rendered_size(items, ceiling - separators)


def indent_bound(text: Any, width: Any = 4, first: Any = False, blank: Any = False) -> int:
    """The longest ``text|indent(width)`` can be: every line gains the indentation."""
    value = str(text)
    step = len(width) if isinstance(width, str) else max(int(width), 0)
    return len(value) + (value.count("\n") + 1) * step


def wordwrap_bound(
    text: Any,
    width: Any = 79,
    break_long_words: Any = True,
    wrapstring: Any = None,
    break_on_hyphens: Any = True,
) -> int:
    """The longest ``text|wordwrap(width, ..., wrapstring)`` can be: a break can come at
    every space and newline, and every ``width`` characters."""
    value = str(text)
    breaks = len(value) // max(int(width), 1) + value.count(" ") + value.count("\n") + 1
    return len(value) + breaks * len(str(wrapstring or "\n"))


def expandtabs_bound(text: Any, tabsize: Any = 8) -> int:
    """The longest ``text.expandtabs(tabsize)`` can be."""
    value = str(text)
    return len(value) + value.count("\t") * max(int(tabsize), 0)


def translate_bound(text: Any, table: Any) -> int:
    """The longest ``text.translate(table)`` can be: each character may become the longest
    replacement in the table."""
    longest = 1
    if isinstance(table, Mapping):
        longest = max([1, *(len(v) for v in table.values() if isinstance(v, str))])
    return len(str(text)) * longest
