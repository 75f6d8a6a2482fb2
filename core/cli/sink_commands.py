"""``cadence sink``: a local SMTP server that keeps what it receives."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from pathlib import Path

import click

from core.cli.app import cli, common_options, load_command_settings, out, run_fast
from core.sink import SinkStats, SmtpSink

_STATS_EVERY_SECONDS = 1.0


@cli.command()
@click.option(
    "--maildir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Store every message as a file in this maildir (created if missing); "
    "default: only count them.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    help="Port to listen on; 0 picks a free one (default: smtp.port from the settings).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--stats",
    "stats_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the counts as JSON to this file every second and at exit.",
)
@common_options
def sink(maildir: Path | None, port: int | None, host: str, stats_file: Path | None) -> None:
    """Run a local SMTP server that accepts every message, until Ctrl-C or SIGTERM.

    Point smtp.host and smtp.port at it to see what a campaign sends without
    reaching anyone; messages sent twice are counted by their Message-ID.
    """
    if stats_file is not None and not stats_file.parent.is_dir():
        raise click.BadParameter(
            f"{stats_file.parent} is not a folder; create it or choose another file",
            param_hint="--stats",
        )
    if port is None:
        port = load_command_settings().smtp.port
    run_fast(_serve(SmtpSink(host, port, maildir=maildir), stats_file))


async def _serve(sink: SmtpSink, stats_file: Path | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, stop.set)
    try:
        await sink.start()
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {sink.host}:{sink.port}: {exc.strerror}; "
            "choose another --port (0 picks a free one)"
        ) from None
    where = f", storing messages in {sink.maildir}" if sink.maildir else ""
    out.print(f"cadence sink listening on {sink.host}:{sink.port}{where}", highlight=False)
    try:
        while True:
            if stats_file is not None:
                _write_stats(stats_file, sink.stats())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), _STATS_EVERY_SECONDS)
                break
    finally:
        await sink.stop()
        stats = sink.stats()
        if stats_file is not None:
            _write_stats(stats_file, stats)
        out.print(
            f"cadence sink received {stats.received} messages: {stats.distinct} distinct "
            f"Message-IDs, {stats.duplicates} duplicates",
            highlight=False,
        )


def _write_stats(path: Path, stats: SinkStats) -> None:
    # Replaced whole, so a reader in another process never sees half a file.
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(stats.as_dict()) + "\n", encoding="utf-8")
    os.replace(temporary, path)
