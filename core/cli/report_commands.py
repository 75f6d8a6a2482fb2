"""``cadence report``: measured results as terminal tables, CSV or JSON.

The group and :func:`format_option` / :func:`print_report` are shared: every report
command (here the campaign ones; the stage and program KPIs join from their own module)
builds a :class:`core.measure.export.Report` and prints it through the one writer, so
every report has the same ``--format`` and the same spreadsheet-safe CSV. Reports are
as of the clock's now: ``--now`` reads the store as it was then.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from core import clock
from core.cli.app import (
    cli,
    common_options,
    load_command_program,
    load_command_settings,
    out,
    run,
    with_store,
)
from core.db import Store
from core.errors import ConfigError
from core.measure.export import FORMATS, Report, ReportFormat, write_report
from core.settings import Settings

if TYPE_CHECKING:  # loaded when a command runs, not for --help
    from datetime import datetime

    from core.measure.uplift import CampaignUplift
    from core.program.model import ParamValue

F = TypeVar("F", bound=Callable[..., Any])


@cli.group()
def report() -> None:
    """Measured results: campaign uplift against control, per campaign or run by run."""


def format_option(command: F) -> F:
    """``--format table|csv|json`` (table by default), passed as ``output_format``."""
    return click.option(
        "--format",
        "output_format",
        type=click.Choice(FORMATS),
        default="table",
        show_default=True,
        help="A terminal table, CSV (safe to open in a spreadsheet) or one JSON document.",
    )(command)


def print_report(report: Report, output_format: ReportFormat) -> None:
    write_report(report, output_format, out)


def _program_params(settings: Settings) -> dict[str, ParamValue]:
    """The program's params, which goal event rules may read. Reports read what the
    store holds, so program files that do not load now do not stop them: rules then
    see no params (and a rule that needs one says so)."""
    try:
        return load_command_program(settings).params
    except ConfigError:
        return {}


def _uplifts(settings: Settings, as_of: datetime, name: str | None) -> list[CampaignUplift]:
    from core.measure.campaign_report import campaign_uplifts

    params = _program_params(settings)
    minimum = settings.measure.min_sample_per_arm

    async def work(store: Store) -> list[CampaignUplift]:
        async with store.reading() as session:
            return await campaign_uplifts(session, as_of, minimum, params, name)

    return run(with_store(settings, work))


@report.command("campaigns")
@format_option
@common_options
def report_campaigns(output_format: ReportFormat) -> None:
    """Every campaign: runs, sent, control, conversion of both arms, uplift with its 95%
    interval, p-value, incremental conversions and revenue, and the verdict."""
    from core.measure.campaign_report import campaigns_report

    settings = load_command_settings()
    as_of = clock.now()
    uplifts = _uplifts(settings, as_of, None)
    minimum = settings.measure.min_sample_per_arm
    print_report(campaigns_report(uplifts, as_of, settings.zone, minimum), output_format)


@report.command("campaign")
@click.argument("name")
@format_option
@common_options
def report_campaign(name: str, output_format: ReportFormat) -> None:
    """One campaign run by run (open goal windows with their conversions so far), and its
    totals over the runs whose window closed."""
    from core.measure.campaign_report import campaign_report

    settings = load_command_settings()
    as_of = clock.now()
    (uplift,) = _uplifts(settings, as_of, name)
    minimum = settings.measure.min_sample_per_arm
    print_report(campaign_report(uplift, as_of, settings.zone, minimum), output_format)
