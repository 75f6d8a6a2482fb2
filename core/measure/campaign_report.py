"""Campaign results as reports: every campaign's uplift, or one campaign run by run.

Both read the stored campaigns (ad-hoc launches and campaigns since removed from the
program included), measure their goals as of a moment (:mod:`core.measure.goals`) and
judge them (:mod:`core.measure.uplift`), then lay the figures out as a
:class:`~core.measure.export.Report`. Runs whose goal window is still open are listed
run by run with their conversions so far and the verdict "window open until ..."; they are
left out of a campaign's totals until their window closes.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import CampaignError
from core.measure.export import Column, Report, plain
from core.measure.goals import Arm, measure_goals
from core.measure.uplift import CONFIDENCE, CampaignUplift, Estimate, Verdict, campaign_uplift
from core.models import Campaign
from core.program.model import GoalSpec, ParamValue


async def campaign_uplifts(
    session: AsyncSession,
    as_of: datetime,
    min_sample_per_arm: int,
    params: Mapping[str, ParamValue] | None = None,
    name: str | None = None,
) -> list[CampaignUplift]:
    """The uplift of every stored campaign by name, or of campaign ``name`` alone (an
    unknown name raises :class:`CampaignError` naming the close matches)."""
    query = select(Campaign).order_by(Campaign.name)
    if name is not None:
        query = query.where(Campaign.name == name)
    campaigns = list((await session.execute(query)).scalars())
    if name is not None and not campaigns:
        raise await _unknown_campaign(session, name)
    measured = await measure_goals(session, campaigns, as_of, params)
    return [campaign_uplift(result, min_sample_per_arm) for result in measured]


async def _unknown_campaign(session: AsyncSession, name: str) -> CampaignError:
    names = list((await session.execute(select(Campaign.name))).scalars())
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(f'`{match}`' for match in close)}?" if close else ""
    return CampaignError(
        f"no campaign named `{name}`{hint} (`cadence report campaigns` lists them all)"
    )


def goal_text(goal: GoalSpec | None, *, short: bool = False) -> str | None:
    """``purchase within 7d``, with the event rule and value when the goal has them;
    ``short``: ``purchase in 7d``, a mark for a rule and ``$`` for revenue (the table's)."""
    if goal is None:
        return None
    if short:
        return f"{goal.event} in {goal.within}{'*' if goal.event_rule else ''}" + (
            " $" if goal.value else ""
        )
    text = f"{goal.event} within {goal.within}"
    if goal.event_rule:
        text += f" where {goal.event_rule}"
    return text + (", revenue" if goal.value else "")


def _rate(value: Any) -> str:
    return "-" if value is None else f"{value:.2%}"


def _points(value: Any) -> str:
    return "-" if value is None else f"{value * 100:+.2f}"


def _interval(value: Any) -> str:
    if value is None:
        return "-"
    low, high = value
    return f"[{low * 100:+.1f}, {high * 100:+.1f}]"


def _p_value(value: Any) -> str:
    if value is None:
        return "-"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _signed(value: Any) -> str:
    return "-" if value is None else f"{value:+,.1f}"


_INTERVAL = f"{CONFIDENCE:.0%} interval"


def _figure_columns(revenue: bool) -> list[Column]:
    """The columns of :func:`_figures`; the table shows incremental revenue only when a
    goal sums revenue (CSV and JSON always carry it)."""
    return [
        Column("incremental_revenue", "incr. revenue", _signed, numeric=True, table=revenue)
        if column.key == "incremental_revenue"
        else column
        for column in _FIGURES
    ]


_FIGURES = (
    Column("treated", "treated", numeric=True, table=False),
    Column("treated_converted", numeric=True, table=False),
    Column("treated_rate", "treated", _rate, numeric=True),
    Column("control_members", numeric=True, table=False),
    Column("control_converted", numeric=True, table=False),
    Column("control_rate", "control", _rate, numeric=True),
    Column("uplift", "uplift pp", _points, numeric=True),
    Column("uplift_interval", _INTERVAL, _interval, numeric=True, export=False),
    Column("uplift_low", numeric=True, table=False),
    Column("uplift_high", numeric=True, table=False),
    Column("relative_uplift", "relative", _rate, numeric=True, table=False),
    Column("relative_low", numeric=True, table=False),
    Column("relative_high", numeric=True, table=False),
    Column("p_value", "p", _p_value, numeric=True),
    Column("incremental_conversions", "incr.", _signed, numeric=True),
    Column("incremental_low", numeric=True, table=False),
    Column("incremental_high", numeric=True, table=False),
    Column("treated_revenue", numeric=True, table=False),
    Column("control_revenue", numeric=True, table=False),
    Column("incremental_revenue", "incr. revenue", _signed, numeric=True),
    Column("verdict"),
)


def _figures(estimate: Estimate, closes: datetime | None, zone: ZoneInfo) -> dict[str, Any]:
    """The columns of :data:`_FIGURES` for one estimate."""
    absolute, relative = estimate.absolute_interval, estimate.relative_interval
    incremental = estimate.incremental_interval
    verdict = str(estimate.verdict)
    if estimate.verdict is Verdict.OPEN and closes is not None:
        verdict += f" until {closes.astimezone(zone):%Y-%m-%d %H:%M}"
    treated, control = estimate.treated, estimate.control
    return {
        "treated": treated.members,
        "treated_converted": treated.converted,
        "treated_rate": estimate.treated_rate,
        "control_members": control.members,
        "control_converted": control.converted,
        "control_rate": estimate.control_rate,
        "uplift": estimate.absolute,
        "uplift_interval": None if absolute is None else (absolute.low, absolute.high),
        "uplift_low": None if absolute is None else absolute.low,
        "uplift_high": None if absolute is None else absolute.high,
        "relative_uplift": estimate.relative,
        "relative_low": None if relative is None else relative.low,
        "relative_high": None if relative is None else relative.high,
        "p_value": estimate.p_value,
        "incremental_conversions": estimate.incremental_conversions,
        "incremental_low": None if incremental is None else incremental.low,
        "incremental_high": None if incremental is None else incremental.high,
        "treated_revenue": treated.revenue,
        "control_revenue": control.revenue,
        "incremental_revenue": estimate.incremental_revenue,
        "verdict": verdict,
    }


def _notes(min_sample_per_arm: int) -> list[str]:
    return [
        "Treated and control: the goal's conversion rate of the messages sent and of the "
        "customers kept back. Only runs whose goal window closed count; with fewer than "
        f"{min_sample_per_arm:,} members in an arm: not enough data. Uplift and its "
        f"{CONFIDENCE:.0%} (Newcombe) interval in percentage points; p: two-sided, "
        "two-proportion; incr.: conversions the messages added. A goal with * has an event rule, "
        "with $ it sums revenue."
    ]


def campaigns_report(
    uplifts: list[CampaignUplift], as_of: datetime, zone: ZoneInfo, min_sample_per_arm: int
) -> Report:
    """One row per campaign: runs, messages, both arms' rates and the uplift."""
    revenue = any(u.measured.goal is not None and u.measured.goal.value for u in uplifts)
    columns = [
        Column("campaign", wrap=False),
        Column("kind", table=False),
        Column("goal", show=lambda value: value or "-", table=False),
        Column("goal_short", "goal", export=False, wrap=False),
        Column("runs", numeric=True),
        Column("open_runs", "open", numeric=True),
        Column("sent", numeric=True),
        Column("control", "kept back", numeric=True),
        *_figure_columns(revenue),
    ]
    rows = []
    for uplift in uplifts:
        measured = uplift.measured
        row = {
            "campaign": measured.name,
            "kind": measured.kind,
            "goal": goal_text(measured.goal),
            "goal_short": "-" if measured.goal is None else goal_text(measured.goal, short=True),
            "runs": len(measured.runs),
            "open_runs": len(measured.open_runs),
            "sent": measured.sent,
            "control": measured.kept_back,
            **_figures(uplift.estimate, uplift.next_close, zone),
        }
        rows.append(row)
    return Report(
        name="campaigns",
        title=f"Campaign uplift as of {as_of.astimezone(zone):%Y-%m-%d %H:%M %Z}",
        columns=columns,
        rows=rows,
        notes=_notes(min_sample_per_arm),
        meta={"as_of": as_of, "min_sample_per_arm": min_sample_per_arm},
    )


def campaign_report(
    uplift: CampaignUplift, as_of: datetime, zone: ZoneInfo, min_sample_per_arm: int
) -> Report:
    """One campaign run by run (open runs with their conversions so far), and its totals
    over the runs whose window closed."""
    measured = uplift.measured
    columns = [
        Column("run", wrap=False),
        Column("planned_at", "planned", lambda value: _moment(value, zone)),
        Column("window_closes_at", "window closes", lambda value: _moment(value, zone)),
        Column("final", table=False),
        Column("sent", numeric=True),
        Column("control", "kept back", numeric=True),
        *_figure_columns(measured.goal is not None and measured.goal.value is not None),
    ]
    rows = []
    for run_uplift in uplift.runs:
        run = run_uplift.run
        row = {
            "run": run.run_key,
            "planned_at": run.planned_at,
            "window_closes_at": run.closes_at,
            "final": run.final,
            "sent": run.treated.members,
            "control": run.control.members,
            **_figures(run_uplift.estimate, run.closes_at, zone),
        }
        rows.append(row)
    final = measured.final_runs
    totals = {
        "run": f"total of {len(final)} closed run{'s' if len(final) != 1 else ''}",
        "planned_at": None,
        "window_closes_at": None,
        "final": True,
        "sent": sum((run.treated for run in final), Arm()).members,
        "control": sum((run.control for run in final), Arm()).members,
        **_figures(uplift.estimate, uplift.next_close, zone),
    }
    goal = goal_text(measured.goal) or "none"
    notes = [f"Goal: {goal}; control group {measured.control_percent:g}%."]
    return Report(
        name="campaign",
        title=f"{measured.name} ({measured.kind.replace('_', '-')}) as of "
        f"{as_of.astimezone(zone):%Y-%m-%d %H:%M %Z}",
        columns=columns,
        rows=rows,
        totals=totals,
        notes=notes + _notes(min_sample_per_arm),
        meta={
            "campaign": measured.name,
            "kind": measured.kind,
            "goal": goal_text(measured.goal),
            "control_percent": measured.control_percent,
            "as_of": as_of,
            "min_sample_per_arm": min_sample_per_arm,
        },
    )


def _moment(value: Any, zone: ZoneInfo) -> str:
    return plain(None if value is None else value.astimezone(zone))
