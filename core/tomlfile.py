"""Reading the TOML files a user edits, and pointing at lines in them for error messages.

``tomllib`` gives values without positions, so :func:`line_of` finds a key
again in the text. It understands what Cadence's files use: tables
(``[a.b]``), arrays of tables (``[[stage]]``, addressed by index) and
``key = value`` lines; it is for messages, so "best effort" is enough.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.errors import ConfigError

_HEADER = re.compile(r"\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")


def read_toml(path: Path, what: str) -> tuple[str, dict[str, Any]]:
    """The text and the parsed contents of ``path``; ``what`` names the file in errors."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {what}: {exc.strerror}") from None
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def line_of(text: str, loc: Sequence[str | int]) -> int | None:
    """The line of the key at ``loc`` (``["stage", 2, "rule"]``), or of its table.

    A key inside an inline table (``target = { segment = "x" }``) is found on the
    line of the key that holds the table.
    """
    path = [str(part) for part in loc if not isinstance(part, int)]
    indexes = [part for part in loc if isinstance(part, int)]
    # The array-of-tables element ``loc`` points into, if any: its header and its index.
    array = ".".join(str(part) for part in loc[: loc.index(indexes[0])]) if indexes else None
    wanted = indexes[0] if indexes else 0
    seen = -1
    current = ""
    best: int | None = None
    holder = path[-2] if array is not None and len(path) > len(array.split(".")) + 1 else None
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            current = header.group(2)
            if header.group(1) == "[[" and current == array:
                seen += 1
                if seen == wanted:
                    best = number
            elif current == ".".join(path):
                return number
            continue
        if array is not None and (current != array or seen != wanted):
            continue
        table = ".".join(path[:-1])
        if (array is not None or current == table) and re.match(
            rf"\s*{re.escape(path[-1])}\s*=", line
        ):
            return number
        if holder is not None and re.match(rf"\s*{re.escape(holder)}\s*=", line):
            best = number
    return best
