"""Opening the console in this terminal: the one way ``cadence console`` and
``cadence demo`` start it."""

from __future__ import annotations

from pathlib import Path

from console.app import CadenceConsole
from console.context import ConsoleContext
from console.log_tail import LogTail
from core.db import Store
from core.program import Program
from core.settings import Settings
from core.sink import SmtpSink


async def run_console(
    store: Store,
    settings: Settings,
    program: Program,
    *,
    embedded: bool = False,
    read_only: bool = False,
) -> None:
    """Run the console on ``store`` until the operator quits."""
    log_tail = LogTail()
    log_tail.install()  # from here on, only Textual writes to the terminal
    context = ConsoleContext(store, settings, program, read_only_asked=read_only)
    await CadenceConsole(context, embedded=embedded, log_tail=log_tail).run_async()


async def run_console_with_sink(
    store: Store, settings: Settings, program: Program, maildir: Path
) -> None:
    """The demo's console: the scheduler inside it, its e-mail going to a local SMTP sink
    that keeps every message in ``maildir``."""
    async with SmtpSink(maildir=maildir) as sink:
        smtp = settings.smtp.model_copy(update={"host": sink.host, "port": sink.port})
        local = settings.model_copy(update={"smtp": smtp})
        await run_console(store, local, program, embedded=True)
