"""A batch's outcomes as the channels collect them: each reported the moment it is known,
and failures put into words the same way on every channel."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from channels.base import Report, SendOutcome


class Outcomes:
    """The outcomes of one ``send``, handed to the caller's ``report`` as they come."""

    def __init__(self, report: Report | None) -> None:
        self.all: list[SendOutcome] = []
        self._report = report

    async def add(self, outcome: SendOutcome) -> None:
        """Keep ``outcome`` and report it; returns once the report is done (see
        :meth:`channels.base.Channel.send`: what sent it waits for that)."""
        self.all.append(outcome)
        if self._report is not None:
            await self._report(outcome)

    async def add_all(self, outcomes: Sequence[SendOutcome]) -> None:
        """Keep and report outcomes known at the same moment (a file written at once):
        reported together, so the worker records them in one commit, not one each."""
        self.all.extend(outcomes)
        if self._report is not None:
            report = self._report
            await asyncio.gather(*(report(outcome) for outcome in outcomes))


def error_text(exc: BaseException) -> str:
    """An exception as a reason: its kind, and its message when it has one (a timeout's
    is often empty)."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
