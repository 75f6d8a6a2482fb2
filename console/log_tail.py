"""The last lines this process logged, kept for the scheduler screen's log tail.

While the console runs, nothing may write to the terminal but Textual: the root logger's
records go here instead (the embedded scheduler's included), and the scheduler screen
shows the newest.
"""

from __future__ import annotations

import logging
from collections import deque

from core import clock

LINES = 500
"""How many lines the tail keeps."""


class LogTail(logging.Handler):
    """A logging handler that keeps the latest :data:`LINES` records as text."""

    def __init__(self, level: int = logging.INFO) -> None:
        super().__init__(level)
        self._lines: deque[str] = deque(maxlen=LINES)
        self.written = 0
        """Lines ever kept: the screen adds only what is new since it last looked."""

    def emit(self, record: logging.LogRecord) -> None:
        moment = clock.now().strftime("%H:%M:%S")
        self._lines.append(f"{moment} {record.levelname:<7} {record.name}: {record.getMessage()}")
        self.written += 1

    def since(self, written: int) -> list[str]:
        """The lines kept after the first ``written`` (all that are still kept)."""
        new = self.written - written
        return list(self._lines)[-new:] if new > 0 else []

    def install(self) -> list[logging.Handler]:
        """Become the root logger's only handler; returns the handlers it replaced."""
        root = logging.getLogger()
        replaced = list(root.handlers)
        for handler in replaced:
            root.removeHandler(handler)
        root.addHandler(self)
        if root.level > self.level or root.level == logging.NOTSET:
            root.setLevel(self.level)
        return replaced
