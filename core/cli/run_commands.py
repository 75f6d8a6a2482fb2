"""``cadence campaign run|preview|launch|tick``: campaign runs through the contact policy.

Every command plans through :mod:`core.planner` exactly as the scheduler
does; ``preview`` plans in a transaction that writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import click
from rich import box
from rich.table import Table

from core import clock
from core.cli.app import (
    common_options,
    load_command_program,
    load_command_settings,
    out,
    run,
    with_store,
)
from core.cli.campaign_commands import campaign
from core.db import Store
from core.planner.runs import PlannedRun
from core.planner.tick import RunPlan
from core.policy import Outcome
from core.program.model import CampaignSpec

F = TypeVar("F", bound=Callable[..., Any])


def exclusions_text(plan: RunPlan) -> str:
    """The run's exclusions by reason, e.g. ``cooldown 12 · lost to winback 5``."""
    parts = [
        f"{outcome.key.replace('_', ' ')} {plan.count(outcome):,}"
        for outcome in Outcome
        if not outcome.planned and outcome is not Outcome.LOST and plan.count(outcome)
    ]
    parts += [f"lost to {winner} {count:,}" for winner, count in sorted(plan.lost_to.items())]
    return " · ".join(parts) or "-"


def print_plans(plans: Sequence[RunPlan], title: str) -> None:
    """A table of runs with their counts by outcome, then each run's exclusions by reason:
    what every planning command prints. It fits an 80-column terminal."""
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("campaign", no_wrap=True)
    for column in ("targeted", "queued", "held", "control", "excluded"):
        table.add_column(column, justify="right", no_wrap=True)
    for plan in plans:
        table.add_row(
            plan.campaign,
            f"{plan.targeted:,}",
            *(
                f"{plan.count(outcome):,}"
                for outcome in (Outcome.QUEUED, Outcome.HELD, Outcome.CONTROL)
            ),
            f"{plan.excluded:,}",
        )
    out.print(table)
    for plan in plans:
        if plan.excluded:
            out.print(f"  {plan.campaign} excluded: {exclusions_text(plan)}")


def _print_planned(planned: Sequence[PlannedRun], now: datetime) -> None:
    if not planned:
        out.print("Nothing was due: every run up to now is planned already.")
        return
    print_plans([run.plan for run in planned], f"runs planned at {now:%Y-%m-%d %H:%M} UTC")


@campaign.command("run")
@click.argument("name")
@common_options
def campaign_run(name: str) -> None:
    """Run NAME now, outside its schedule, through the contact policy."""
    from core.planner.launch import run_campaign_now

    settings = load_command_settings()
    program, now = load_command_program(settings), clock.now()
    planned = run(
        with_store(settings, lambda store: run_campaign_now(store, program, settings, name, now))
    )
    _print_planned([planned], now)


@campaign.command("tick")
@common_options
def campaign_tick() -> None:
    """Plan every run that is due now: cron slots that came round, launches whose time came.

    The scheduler does this every minute; missed slots of a cycle coalesce into one run.
    """
    from core.planner.runs import plan_due_runs

    settings = load_command_settings()
    program, now = load_command_program(settings), clock.now()
    planned = run(with_store(settings, lambda store: plan_due_runs(store, program, settings, now)))
    _print_planned(planned, now)


def _target_options(command: F) -> F:
    """The options that describe an ad-hoc campaign, shared by ``preview`` and ``launch``."""
    for option in reversed(
        [
            click.option("--segment", help="Target this segment."),
            click.option("--stage", help="Target this lifecycle stage (with --segment: both)."),
            click.option("--rule", help='An extra rule, e.g. "consent_email == true".'),
            click.option("--template", help="The template to send (a name in templates/)."),
            click.option(
                "--channel",
                default="email",
                show_default=True,
                type=click.Choice(["email", "sms", "webhook", "in_app", "file"]),
            ),
            click.option(
                "--control",
                "control",
                type=float,
                default=10.0,
                show_default=True,
                help="Control group, percent of the audience.",
            ),
            click.option("--priority", type=int, default=50, show_default=True),
            click.option("--name", help="Campaign name (default: launch-SEGMENT-DATE)."),
        ]
    ):
        command = option(command)
    return command


@campaign.command("preview")
@click.argument("campaign_name", metavar="[NAME]", required=False)
@_target_options
@common_options
def campaign_preview(campaign_name: str | None, **target: Any) -> None:
    """Count what a run would do now, by outcome, without writing anything.

    Preview a stored or program campaign by NAME, or an ad-hoc one by --segment/--stage.
    """
    from core.planner.launch import preview_campaign, preview_spec

    settings = load_command_settings()
    program, now = load_command_program(settings), clock.now()
    if campaign_name is not None:

        async def work(store: Store) -> RunPlan:
            return await preview_campaign(store, program, settings, campaign_name, now)

    else:
        spec = _launch_spec(target, now, template=target["template"] or "preview")

        async def work(store: Store) -> RunPlan:
            return await preview_spec(store, program, settings, spec, now)

    plan = run(with_store(settings, work))
    print_plans([plan], f"preview at {now:%Y-%m-%d %H:%M} UTC (nothing written)")


def _launch_spec(target: dict[str, Any], now: datetime, **overrides: Any) -> CampaignSpec:
    """The ad-hoc campaign the target options describe."""
    from core.planner.launch import launch_spec

    return launch_spec(**{**target, **overrides}, now=now)


@campaign.command("launch")
@_target_options
@click.option("--at", "at_text", metavar="TIME", help="When to run (ISO 8601); default now.")
@click.option("--yes", is_flag=True, help="Confirm a launch above policy.launch_confirm_above.")
@common_options
def campaign_launch(at_text: str | None, yes: bool, **target: Any) -> None:
    """Launch an ad-hoc campaign: plan a one-off run now or at --at, through the policy."""
    from core.planner.launch import launch_campaign

    if target["template"] is None:
        raise click.UsageError("--template is required: the template to send")
    settings = load_command_settings()
    program, now = load_command_program(settings), clock.now()
    at = None if at_text is None else clock.parse_moment(at_text, settings.zone)
    spec = _launch_spec(target, now)
    launched = run(
        with_store(
            settings,
            lambda store: launch_campaign(
                store, program, settings, spec, now, at=at, confirmed=yes
            ),
        )
    )
    if launched.planned is None:
        out.print(
            f"Launched {launched.campaign}: it runs at {launched.due_at:%Y-%m-%d %H:%M} UTC "
            "(the next `cadence campaign tick` after that plans it)."
        )
        return
    out.print(f"Launched {launched.campaign}.")
    _print_planned([launched.planned], now)
