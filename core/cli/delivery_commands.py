"""``cadence deliver``: delivery workers and the HTTP API."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from core.cli.app import cli, common_options, load_command_settings, out, run_fast, with_store
from core.db import Store
from core.program.model import CHANNEL_NAMES

if TYPE_CHECKING:
    from core.delivery import DeliveryStats


@cli.command()
@click.option(
    "--channel",
    "channels",
    multiple=True,
    type=click.Choice(CHANNEL_NAMES),
    help="Serve only this channel (repeatable; default: every configured channel).",
)
@click.option(
    "--until-idle",
    is_flag=True,
    help="Stop once nothing is left to send now, instead of waiting for more.",
)
@click.option("--no-api", is_flag=True, help="Do not serve the HTTP API beside the workers.")
@click.option(
    "--processes",
    type=click.IntRange(1, 64),
    help="Worker processes, each on its own core (default: delivery.processes).",
)
@common_options
def deliver(
    channels: tuple[str, ...], until_idle: bool, no_api: bool, processes: int | None
) -> None:
    """Send the outbox's messages; runs until Ctrl-C or SIGTERM (or --until-idle)."""
    from core.workers import configured_channels, run_delivery

    settings = load_command_settings()
    names = list(channels) or configured_channels(settings)
    if not until_idle:
        api = "" if no_api else f"; HTTP API on {settings.api.host}:{settings.api.port}"
        out.print(f"Delivering {', '.join(names)}{api} (Ctrl-C stops)")

    async def work(store: Store) -> DeliveryStats:
        return await run_delivery(
            store,
            settings,
            channels=names,
            until_idle=until_idle,
            serve_http=not no_api,
            processes=processes or settings.delivery.processes,
        )

    stats = run_fast(with_store(settings, work))
    by_channel = ", ".join(f"{name} {count:,}" for name, count in stats.by_channel.items())
    out.print(
        f"Sent {stats.sent:,} ({by_channel or 'none'}); {stats.retried:,} to retry, "
        f"{stats.failed:,} failed, {stats.cancelled:,} cancelled."
    )
