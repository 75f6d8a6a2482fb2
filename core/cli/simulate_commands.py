"""``cadence simulate``: the program over simulated days against synthetic customers with a
known true effect of every campaign, and the KPIs it ends with."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import click
from rich import box
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from core.cli.app import cli, common_options, err, load_command_settings, out, run_fast
from core.db import open_store


@contextmanager
def simulation_progress(
    start: datetime, days: int, wanted: bool = True
) -> Iterator[Callable[[datetime], None] | None]:
    """A bar of simulated days on a terminal's standard error; yields the callback that
    moves it, or None when there is no terminal (or no bar is ``wanted``)."""
    if not (wanted and err.is_terminal):
        yield None
        return
    with Progress(
        TextColumn("simulating"),
        BarColumn(),
        TextColumn("day {task.completed:.0f}/{task.total}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task("days", total=days)

        def reached(moment: datetime) -> None:
            bar.update(task, completed=(moment - start).total_seconds() / 86400)

        yield reached


def _clear_previous_run(directory: Path) -> None:
    """Remove what an earlier simulation left in ``directory`` (its store and messages),
    and nothing else: a simulation always starts from nothing."""
    directory.mkdir(parents=True, exist_ok=True)
    for pattern in ("simulation.db*", "messages-*.jsonl"):
        for leftover in directory.glob(pattern):
            leftover.unlink()


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


@cli.command()
@click.option("--days", default=90, show_default=True, type=click.IntRange(1))
@click.option("--customers", default=20_000, show_default=True, type=click.IntRange(1))
@click.option("--seed", default=1, show_default=True, type=int)
@click.option(
    "--effect",
    default=0.02,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="The true effect of every campaign: absolute uplift of its goal's chance.",
)
@click.option(
    "--base-rate",
    default=0.05,
    show_default=True,
    type=click.FloatRange(0, 1, max_open=True),
    help="Chance that a customer buys within any 7 days, untreated.",
)
@click.option(
    "--tick-minutes",
    default=60,
    show_default=True,
    type=click.IntRange(1),
    help="The finest grain of simulated time: no job (journeys, date triggers) runs more often.",
)
@click.option(
    "--dir",
    "directory",
    default="cadence-simulation",
    show_default=True,
    type=click.Path(path_type=Path),
    help="Where the SQLite store and the delivered messages (messages-CHANNEL.jsonl) go.",
)
@click.option(
    "--database-url",
    help="Simulate on this (empty) database instead of a fresh SQLite file in --dir.",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
)
@common_options
def simulate(
    days: int,
    customers: int,
    seed: int,
    effect: float,
    base_rate: float,
    tick_minutes: int,
    directory: Path,
    database_url: str | None,
    output_format: str,
) -> None:
    """Run the whole program over DAYS simulated days against synthetic customers and
    print the KPIs: messages, treated against control conversion, stage sizes."""
    from core.simulate import SimulationSpec, run_simulation
    from core.simulate.behaviour import Behaviour
    from core.simulate.report import SimulationReport

    settings = load_command_settings()
    _clear_previous_run(directory)
    url = database_url or f"sqlite+aiosqlite:///{(directory / 'simulation.db').resolve()}"
    settings = settings.model_copy(update={"database_url": url})
    spec = SimulationSpec(
        customers,
        days,
        seed,
        Behaviour(base_rate=base_rate, effect=effect),
        tick=timedelta(minutes=tick_minutes),
    )

    async def work(progress: Callable[[datetime], None] | None) -> SimulationReport:
        store = open_store(settings)
        try:
            return await run_simulation(store, settings, spec, directory, progress)
        finally:
            await store.close()

    with simulation_progress(spec.start, days, output_format == "table") as reached:
        report = run_fast(work(reached))
    if output_format == "json":
        out.print_json(json.dumps(report.as_dict()))
        return
    campaigns = Table(
        title=f"{days} simulated days, {customers:,} customers, seed {seed}, "
        f"true effect {effect:.2%}",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for column in ("campaign", "runs", "sent", "control", "opened", "clicked"):
        campaigns.add_column(column, justify="left" if column == "campaign" else "right")
    for column in ("goal", "treated conv.", "control conv.", "uplift"):
        campaigns.add_column(column, justify="right")
    for result in report.campaigns:
        campaigns.add_row(
            result.name,
            f"{result.runs:,}",
            f"{result.sent:,}",
            f"{result.control:,}",
            f"{result.opened:,}",
            f"{result.clicked:,}",
            result.goal or "-",
            _rate(result.treated_rate),
            _rate(result.control_rate),
            _rate(result.uplift),
        )
    out.print(campaigns)
    stages = Table(title="customers by stage at the end", box=box.SIMPLE_HEAD, pad_edge=False)
    stages.add_column("stage")
    stages.add_column("customers", justify="right")
    for stage, size in report.stages.items():
        stages.add_row(stage, f"{size:,}")
    out.print(stages)
    err.print(
        f"{report.messages_sent:,} messages in {directory / 'messages-*.jsonl'}, "
        f"{report.events_stored:,} events stored"
    )
