"""Commands for customer intelligence: lifecycle stages, segments, scores and CLV."""

from __future__ import annotations

import json
from datetime import datetime

import click
from rich.table import Table

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
from core.errors import CadenceError
from core.lifecycle import StageOverview
from core.program import Program


@cli.group()
def stages() -> None:
    """Lifecycle stages: assign every customer and see how they move."""


@stages.command("refresh")
@common_options
def stages_refresh() -> None:
    """Place every customer in their stage as of now, recording each move."""
    from core.lifecycle import refresh_stages

    settings = load_command_settings()
    program = load_command_program(settings)

    async def work(store: Store) -> None:
        async with store.transaction() as session:
            result = await refresh_stages(session, program, clock.now())
        out.print(
            f"Stages refreshed for {result.customers:,} customers: {result.moved:,} moved, "
            f"{result.reactivated:,} reactivated."
        )
        if result.unmatched:
            out.print(
                f"[yellow]{result.unmatched:,} customers matched no stage rule and went to "
                f"`{program.fallback_stage.name}`; check the rules in stages.toml.[/]"
            )
        await _print_stages(store, program, clock.now())

    run(with_store(settings, work))


@stages.command("show")
@common_options
def stages_show() -> None:
    """Stage sizes and the moves in and out over the last day and week."""
    settings = load_command_settings()
    program = load_command_program(settings)
    run(with_store(settings, lambda store: _print_stages(store, program, clock.now())))


async def _print_stages(store: Store, program: Program, now: datetime) -> None:
    from core.lifecycle import stage_overview

    async with store.reading() as session:
        print_stage_overview(await stage_overview(session, program, now), now)


def print_stage_overview(overview: list[StageOverview], now: datetime) -> None:
    total = sum(stage.customers for stage in overview) or 1
    table = Table(title=f"Lifecycle stages at {now:%Y-%m-%d %H:%M} UTC")
    table.add_column("stage")
    table.add_column("customers", justify="right")
    table.add_column("share", justify="right")
    table.add_column("in 1d / 7d", justify="right")
    table.add_column("out 1d / 7d", justify="right")
    table.add_column("objective")
    for stage in overview:
        table.add_row(
            stage.name,
            f"{stage.customers:,}",
            f"{stage.customers / total:.1%}",
            f"{stage.entered_day:,} / {stage.entered_week:,}",
            f"{stage.left_day:,} / {stage.left_week:,}",
            stage.objective,
        )
    out.print(table)


@cli.group()
def segments() -> None:
    """Segments (target groups): list, inspect and refresh their membership."""


@segments.command("list")
@click.option("--tag", help="Only segments with this tag.")
@common_options
def segments_list(tag: str | None) -> None:
    """Every segment of the program with its size at the last refresh."""
    from core.segments import segment_summaries

    settings = load_command_settings()
    program = load_command_program(settings)

    async def work(store: Store) -> None:
        async with store.reading() as session:
            summaries = await segment_summaries(session, program)
        table = Table(title=f"{len(summaries)} segments")
        for column in ("segment", "stage", "members", "last refresh", "+in / -out", "tags"):
            table.add_column(column, justify="right" if column == "members" else "left")
        for s in summaries:
            if tag and tag not in s.tags:
                continue
            table.add_row(
                s.name,
                s.stage or "any",
                f"{s.size:,}" if s.refreshed_at else "-",
                f"{s.refreshed_at:%Y-%m-%d %H:%M}" if s.refreshed_at else "never",
                f"+{s.entered:,} / -{s.left:,}" if s.refreshed_at else "",
                ", ".join(s.tags),
            )
        out.print(table)

    run(with_store(settings, work))


@segments.command("show")
@click.argument("name")
@common_options
def segments_show(name: str) -> None:
    """One segment: its definition, size history and recent entries and exits."""
    from core.segments import segment_detail

    settings = load_command_settings()
    program = load_command_program(settings)
    if name not in {segment.name for segment in program.segments}:
        raise CadenceError(
            f"no segment named `{name}` in the program; `cadence segments list` shows them"
        )

    async def work(store: Store) -> None:
        async with store.reading() as session:
            detail = await segment_detail(session, program.segment(name))
        spec = detail.definition.spec
        out.print(f"[bold]{spec.name}[/]  {spec.description}")
        out.print(f"stage: {spec.stage or 'any'}   tags: {', '.join(spec.tags) or '-'}")
        out.print(f"rule:  {' '.join(spec.rule.split())}")
        table = Table(title="size history (latest first)")
        for column in ("refreshed", "members", "entered", "left"):
            table.add_column(column, justify="left" if column == "refreshed" else "right")
        for point in detail.history:
            table.add_row(
                f"{point.at:%Y-%m-%d %H:%M}",
                f"{point.size:,}",
                f"{point.entered:,}",
                f"{point.left:,}",
            )
        out.print(table if detail.history else "never refreshed: run `cadence segments refresh`")

    run(with_store(settings, work))


@segments.command("refresh")
@click.argument("names", nargs=-1)
@common_options
def segments_refresh(names: tuple[str, ...]) -> None:
    """Refresh the membership of NAMES (default: every segment), recording entries and exits."""
    from core.segments import SegmentRefresh, refresh_segments

    settings = load_command_settings()
    program = load_command_program(settings)
    unknown = sorted(set(names) - {segment.name for segment in program.segments})
    if unknown:
        raise CadenceError(
            f"no segment named {', '.join(f'`{n}`' for n in unknown)} in the program; "
            "`cadence segments list` shows them"
        )

    def report(result: SegmentRefresh) -> None:
        change = "baseline" if result.baseline else f"+{result.entered:,} -{result.left:,}"
        out.print(f"  {result.name:<40} {result.size:>10,}  {change}")

    async def work(store: Store) -> None:
        results = await refresh_segments(
            store, program, clock.now(), names=names or None, on_refreshed=report
        )
        out.print(f"Refreshed {len(results)} segments.")

    run(with_store(settings, work))


@cli.group()
def intel() -> None:
    """Scores and customer lifetime value."""


@intel.command("refresh")
@click.option("--json", "as_json", is_flag=True, help="Print the CLV fit as one JSON line.")
@common_options
def intel_refresh(as_json: bool) -> None:
    """Recompute RFM, engagement and lead scores and co-purchase recommendations, fit
    BG/NBD + Gamma-Gamma and store CLV."""
    from core.intel.refresh import refresh_intel

    settings = load_command_settings()
    program = load_command_program(settings)
    result = run(
        with_store(
            settings,
            lambda store: refresh_intel(store, program, clock.now(), zone=settings.zone),
        )
    )
    if result.fit is None:
        raise CadenceError(
            f"scores refreshed for {result.customers:,} customers, but the CLV models were "
            f"not fitted: {result.fit_problem}"
        )
    fit = result.fit.as_dict()
    if as_json:
        click.echo(json.dumps(fit))
        return
    out.print(f"Scores refreshed for {result.customers:,} customers.")
    picked = result.recommendations
    out.print(
        f"Recommendations: {picked.pairs:,} product pairs among {picked.products:,} products "
        f"bought, picks for {picked.customers:,} customers."
    )
    timing = result.send_times
    if timing.best_hour is None:
        out.print("Send times: no opens or clicks in the window; campaigns sent at their hour.")
    else:
        out.print(
            f"Send times: best hours for {timing.customers:,} customers, {timing.learnt:,} "
            f"from their own opens and clicks; without history: {timing.best_hour:02d}:00."
        )
    rates = "  ".join(f"{name} {rate:.1%}" for name, rate in result.channels.rates.items())
    out.print(
        f"Channels: a preferred channel for {result.channels.customers:,} customers"
        + (f" (response rates: {rates})." if rates else ".")
    )
    table = Table(title=f"CLV fit over {fit['customers']:,} buyers (time unit: {fit['time_unit']})")
    table.add_column("model")
    table.add_column("parameters")
    table.add_row("BG/NBD", "  ".join(f"{k} = {fit[k]:.4g}" for k in ("r", "alpha", "a", "b")))
    table.add_row("Gamma-Gamma", "  ".join(f"{k} = {fit[k]:.4g}" for k in ("p", "q", "v")))
    table.add_row("log-likelihood", f"{fit['log_likelihood']:,.2f}")
    out.print(table)
