"""``cadence campaign``: the stored campaigns, listed, inspected, paused and resumed.

Each command is a thin layer over :mod:`core.campaigns`: it opens the store,
calls one function there and prints the plain result. The commands that
plan runs (run, preview, launch, tick) join this group from
:mod:`core.cli.run_commands`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar
from zoneinfo import ZoneInfo

import click
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from core import clock
from core.cli.app import cli, common_options, load_command_settings, out, run, with_store
from core.db import Store
from core.settings import Settings

if TYPE_CHECKING:  # core.campaigns loads when a command runs, not for --help
    from core.campaigns import CampaignDetail, CampaignSummary, StatusChange

T = TypeVar("T")


@cli.group()
def campaign() -> None:
    """Campaigns as the database runs them: list, inspect, pause, resume, preview, run, launch."""


def _read(settings: Settings, query: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run ``query`` in a reading session of the configured store."""

    async def work(store: Store) -> T:
        async with store.reading() as session:
            return await query(session)

    return run(with_store(settings, work))


def _write(settings: Settings, command: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run ``command`` in one writing transaction of the configured store."""

    async def work(store: Store) -> T:
        async with store.transaction() as session:
            return await command(session)

    return run(with_store(settings, work))


def _moment(moment: datetime | None, zone: ZoneInfo, *, with_zone: bool = True) -> str:
    """A time in the program's time zone, to the minute; ``-`` for none."""
    if moment is None:
        return "-"
    return f"{moment.astimezone(zone):%Y-%m-%d %H:%M}" + (
        f" {moment.astimezone(zone):%Z}" if with_zone else ""
    )


@campaign.command("list")
@click.option("--all", "include_archived", is_flag=True, help="Include archived campaigns.")
@common_options
def campaign_list(include_archived: bool) -> None:
    """Every campaign with its status, target, next run and last run's counts."""
    from core.campaigns import list_campaigns

    settings = load_command_settings()
    summaries: list[CampaignSummary] = _read(
        settings,
        lambda session: list_campaigns(
            session, clock.now(), settings.time_zone, include_archived=include_archived
        ),
    )
    if not summaries:
        out.print("No campaigns are stored; `cadence program apply` stores the program's.")
        return
    zone = settings.zone
    table = Table(title=f"{len(summaries)} campaigns (times in {settings.time_zone})")
    # Only the target gives way on a narrow terminal: `show` prints it whole.
    for column in ("campaign", "kind", "status", "priority"):
        table.add_column(column, no_wrap=True, justify="right" if column == "priority" else "left")
    table.add_column("target", overflow="fold", min_width=12)
    for column in ("next run", "last run", "queued"):
        table.add_column(column, no_wrap=True, justify="right" if column == "queued" else "left")
    for s in summaries:
        last = s.last_run
        table.add_row(
            s.name,
            s.kind.replace("_", "-"),
            s.status,
            str(s.priority),
            s.target,
            _moment(s.next_run_at, zone, with_zone=False),
            _moment(last.planned_at if last else None, zone, with_zone=False),
            f"{last.counts.queued:,} / {last.counts.targeted:,}" if last else "",
        )
    out.print(table)


@campaign.command("show")
@click.argument("name")
@common_options
def campaign_show(name: str) -> None:
    """One campaign: its definition, schedule and latest runs with every count."""
    from core.campaigns import campaign_detail

    settings = load_command_settings()
    detail: CampaignDetail = _read(
        settings, lambda session: campaign_detail(session, name, clock.now(), settings.time_zone)
    )
    s, zone = detail.summary, settings.zone
    out.print(f"[bold]{s.name}[/]  {detail.description or ''}".rstrip())
    out.print(
        f"{s.kind.replace('_', '-')} · {s.status} · priority {s.priority} · {s.channel} "
        f"({s.category}) · from {s.origin}"
        + (f" version {detail.program_version}" if detail.program_version else "")
    )
    out.print(f"target:   {s.target}")
    if s.schedule:
        out.print(
            f"schedule: {s.schedule} ({settings.time_zone}); "
            f"next run {_moment(s.next_run_at, zone)}"
        )
    out.print("definition:")
    out.print_json(data=dict(detail.definition))
    if not detail.runs:
        out.print("No runs yet.")
        return
    table = Table(title=f"latest {len(detail.runs)} runs (latest first)")
    for column in ("due", "occasion", "status", "planned"):
        table.add_column(column)
    for column in ("targeted", "queued", "held", "control", "excluded"):
        table.add_column(column, justify="right")
    table.add_column("outcomes")
    for r in detail.runs:
        c = r.counts
        outcomes = ", ".join(f"{reason} {n:,}" for reason, n in r.exclusions)
        table.add_row(
            _moment(r.due_at, zone),
            r.occasion,
            r.status if r.error is None else f"{r.status}: {r.error}",
            _moment(r.planned_at, zone),
            *(f"{n:,}" for n in (c.targeted, c.queued, c.held, c.control, c.excluded)),
            outcomes,
        )
    out.print(table)


@campaign.command("pause")
@click.argument("name")
@common_options
def campaign_pause(name: str) -> None:
    """Pause NAME: it starts no runs until resumed (a re-apply of unchanged files keeps it so)."""
    from core.campaigns import pause_campaign

    settings = load_command_settings()
    change: StatusChange = _write(settings, lambda session: pause_campaign(session, name))
    out.print(change.message)


@campaign.command("resume")
@click.argument("name")
@common_options
def campaign_resume(name: str) -> None:
    """Resume the paused campaign NAME."""
    from core.campaigns import resume_campaign

    settings = load_command_settings()
    change: StatusChange = _write(settings, lambda session: resume_campaign(session, name))
    out.print(change.message)
