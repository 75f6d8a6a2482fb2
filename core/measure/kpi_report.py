"""Stage KPIs, program KPIs and their daily trends as reports (see
:mod:`core.measure.export`): ``cadence report stages``, ``program`` and ``trends``.

In the table a KPI shows beside its target, green when it meets it and red when it
does not (``72.0% < 90%``); CSV and JSON carry the value, the target and the gap as
numbers of their own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from core.measure.export import Column, Report, plain
from core.measure.kpis import KpiValue, Window
from core.measure.programme import ProgrammeKpis
from core.measure.snapshots import PROGRAMME, SnapshotDay
from core.measure.stages import StageKpis

Show = Callable[[float], str]


def percent(value: float) -> str:
    return f"{value:.1%}"


def money(value: float) -> str:
    return f"{value:,.2f}"


def against_target(show: Show) -> Callable[[Any], str]:
    """How the table shows a :class:`KpiValue`: the value, then how it stands to its target."""

    def shown(kpi: KpiValue | None) -> str:
        if kpi is None or kpi.value is None:
            return "-"
        if kpi.target is None:
            return show(kpi.value)
        if kpi.met:
            sign = ">=" if kpi.higher_is_better else "<="
            return f"[green]{show(kpi.value)} {sign} {show(kpi.target)}[/]"
        sign = "<" if kpi.higher_is_better else ">"
        return f"[red]{show(kpi.value)} {sign} {show(kpi.target)}[/]"

    return shown


def _kpi_columns(key: str, header: str, show: Show) -> list[Column]:
    return [
        Column(f"{key}_vs_target", header, against_target(show), numeric=True, export=False),
        Column(key, numeric=True, table=False),
        Column(f"{key}_target", numeric=True, table=False),
        Column(f"{key}_gap", numeric=True, table=False),
    ]


def _kpi_cells(key: str, kpi: KpiValue) -> dict[str, Any]:
    return {
        f"{key}_vs_target": kpi,
        key: kpi.value,
        f"{key}_target": kpi.target,
        f"{key}_gap": kpi.gap,
    }


_STAGE_KPIS: tuple[tuple[str, str, Show], ...] = (
    ("coverage", "coverage", percent),
    ("conversion", "conversion", percent),
    ("revenue_per_customer", "revenue/cust.", money),
    ("churn", "churn", percent),
)


def stages_report(stages: Sequence[StageKpis], window: Window, zone: ZoneInfo) -> Report:
    """One row per stage: its size and moves, then each KPI beside its target."""
    columns = [
        Column("stage"),
        Column("customers", numeric=True),
        Column("entered", "in", numeric=True),
        Column("placed", "new", numeric=True),
        Column("left", "out", numeric=True),
        *(
            column
            for key, header, show in _STAGE_KPIS
            for column in _kpi_columns(key, header, show)
        ),
        Column("cohort", numeric=True, table=False),
        Column("messaged", numeric=True, table=False),
        Column("converted", numeric=True, table=False),
        Column("revenue", numeric=True, table=False),
        Column("churned", numeric=True, table=False),
        Column("objective", table=False),
    ]
    rows = []
    for stage in stages:
        row: dict[str, Any] = {"stage": stage.name, "objective": stage.objective}
        row.update(stage.counts())
        for key, kpi in stage.kpis().items():
            row.update(_kpi_cells(key, kpi))
        rows.append(row)
    days = window.days
    notes = [
        f"Over the {days} days up to the moment: in/out are moves between stages, new are "
        f"customers placed for the first time. Coverage: share of the stage sent a message "
        f"in the {days} days. Conversion, revenue per customer and churn (into the dormant "
        f"stage): of those in the stage {days} days ago, the share who bought since, what "
        f"they spent, the share who went dormant. Targets are the program's `*_{days}d`.",
        *(f"{stage.name}: {stage.objective}" for stage in stages),
    ]
    return Report(
        name="stages",
        title=f"Stage KPIs over {days} days to {_moment(window.end, zone)}",
        columns=columns,
        rows=rows,
        notes=notes,
        meta={"as_of": window.end, "window_days": days},
    )


_PROGRAMME_KPIS: dict[str, tuple[str, Show]] = {
    "automated_share": ("automated share of messages", percent),
    "messages_per_customer_week": ("messages per customer per week", lambda v: f"{v:.2f}"),
    "opt_out_rate": ("opt-outs per message", lambda v: f"{v:.2%}"),
    "complaint_rate": ("complaints per message", lambda v: f"{v:.3%}"),
    "bounce_rate": ("bounces per message", lambda v: f"{v:.2%}"),
}


def programme_report(kpis: ProgrammeKpis, window: Window, zone: ZoneInfo) -> Report:
    """One row per program-wide KPI beside its target, then the counts behind them."""
    columns = [
        Column("kpi", "KPI", table=False),
        Column("label", "KPI", export=False),
        Column("shown", "value", str, numeric=True, export=False),
        Column("value", numeric=True, table=False),
        Column("target", numeric=True, table=False),
        Column("gap", numeric=True, table=False),
    ]
    rows: list[dict[str, Any]] = []
    for key, kpi in kpis.kpis().items():
        label, show = _PROGRAMME_KPIS[key]
        shown = against_target(show)(kpi)
        row = {"kpi": key, "label": label, "shown": shown, "value": kpi.value}
        rows.append({**row, "target": kpi.target, "gap": kpi.gap})
    for key, count in kpis.counts().items():
        label = key.replace("_", " ")
        rows.append({"kpi": key, "label": label, "shown": plain(count), "value": count})
    return Report(
        name="program",
        title=f"Program KPIs over {window.days} days to {_moment(window.end, zone)}",
        columns=columns,
        rows=rows,
        notes=[
            "Automated: cycle, triggered and journey campaigns; the rest are ad-hoc launches. "
            "Rates are per message sent; bounces are bounce reports plus addresses a server "
            "refused at sending."
        ],
        meta={"as_of": window.end, "window_days": window.days},
    )


def trends_report(
    trends: dict[str, list[SnapshotDay]], kpi: str, stages: Sequence[str], until: date, days: int
) -> Report:
    """One row per day with a snapshot: ``kpi`` of every stage that has it, in program
    order, and of the program when it has it."""
    scopes = [scope for scope in (*stages, PROGRAMME) if _has(trends.get(scope, []), kpi)]
    show = _SHOWS.get(kpi)

    def shown(value: Any) -> str:
        return plain(value) if value is None or show is None else show(value)

    columns = [Column("day"), *(Column(_scope_key(s), show=shown, numeric=True) for s in scopes)]
    by_day: dict[date, dict[str, Any]] = {}
    for scope in scopes:
        for point in trends[scope]:
            row = by_day.setdefault(point.day, {"day": point.day})
            row[_scope_key(scope)] = point.values.get(kpi)
    notes = [] if by_day else ["No snapshots of it in these days (`cadence report snapshot`)."]
    return Report(
        name="trends",
        title=f"{kpi} by day, {days} days to {until}",
        columns=columns,
        rows=[by_day[day] for day in sorted(by_day)],
        notes=notes,
        meta={"kpi": kpi, "until": until, "days": days},
    )


_SHOWS: dict[str, Show] = {
    **{key: show for key, _, show in _STAGE_KPIS},
    **{key: show for key, (_, show) in _PROGRAMME_KPIS.items()},
}


def _scope_key(scope: str) -> str:
    return scope or "program"


def _has(series: list[SnapshotDay], kpi: str) -> bool:
    return any(kpi in point.values for point in series)


def _moment(value: datetime, zone: ZoneInfo) -> str:
    return f"{value.astimezone(zone):%Y-%m-%d %H:%M %Z}"
