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
    from console.context import console_settings
    from console.run import run_console

    settings = load_command_settings()
    program = load_command_program(settings)
    if not embedded:  # a scheduler in this process reads much more, through mmap
        settings = console_settings(settings)

    async def work(store: Store) -> None:
        await run_console(store, settings, program, embedded=embedded, read_only=read_only)

    run(with_store(settings, work))
