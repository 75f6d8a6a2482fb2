"""``cadence console``: the operations console in this terminal."""

from __future__ import annotations

import click

from core.cli.app import (
    cli,
    common_options,
    load_command_program,
    load_command_settings,
    run,
    with_store,
)
from core.db import Store


@cli.command("console")
@click.option(
    "--embedded",
    is_flag=True,
    help="Also run the scheduler in this process when no node leads already.",
)
@click.option(
    "--read-only",
    is_flag=True,
    help="Hide every action that changes anything (for on-call staff).",
)
@common_options
def console_command(embedded: bool, read_only: bool) -> None:
    """The operations console: stages, campaigns, launches, the scheduler, customers."""
    from console.app import CadenceConsole
    from console.context import ConsoleContext
    from console.log_tail import LogTail

    settings = load_command_settings()
    program = load_command_program(settings)

    log_tail = LogTail()

    async def work(store: Store) -> None:
        context = ConsoleContext(store, settings, program, read_only_asked=read_only)
        log_tail.install()  # from here on, only Textual writes to the terminal
        await CadenceConsole(context, embedded=embedded, log_tail=log_tail).run_async()

    run(with_store(settings, work))
