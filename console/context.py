"""What every screen of the console works with: the store, the settings, the program and
who is at the keyboard."""

from __future__ import annotations

from dataclasses import dataclass

from core.audit import current_actor
from core.db import Store
from core.program import Program
from core.settings import Settings


def console_settings(settings: Settings) -> Settings:
    """``settings`` as the console (without the scheduler in its process) opens its store
    with: SQLite reads without ``mmap``. Every page of the file read through ``mmap`` stays
    in the process's resident memory (up to ``sqlite.mmap_size_mib``, 256 MiB by default);
    the console reads a few pages a screen, which SQLite's own cache (``cache_size_mib``)
    holds as well, and that cache is bounded."""
    sqlite = settings.sqlite.model_copy(update={"mmap_size_mib": 0})
    return settings.model_copy(update={"sqlite": sqlite})


@dataclass(frozen=True)
class ConsoleContext:
    """The console's view of the world, shared by its screens."""

    store: Store
    settings: Settings
    program: Program
    read_only_asked: bool = False
    """``--read-only``: on-call staff look, they do not touch."""
    actor: str = ""
    """Who acts (see :func:`core.audit.current_actor`); filled in when left empty."""

    def __post_init__(self) -> None:
        if not self.actor:
            object.__setattr__(self, "actor", current_actor())

    @property
    def read_only(self) -> bool:
        """Nothing that changes anything is offered: asked for, or the operator is not
        among the settings' ``console.launchers``."""
        launchers = self.settings.console.launchers
        return self.read_only_asked or (launchers is not None and self.actor not in launchers)
