"""What the console's dashboard shows, in one call: the stage funnel with its KPIs, the
automated share, this week's messages by channel and outcome, the scheduler's health
and the KPI trends.

Everything here is cheap at a million customers: stage sizes are one ``GROUP BY`` over
the stage index, the KPIs come from the latest daily snapshot
(:mod:`core.measure.snapshots`) instead of the events, and the week's messages from the
counts the scheduler stores every five minutes (:mod:`core.figures`). Until it has stored any
they are counted here, through the outbox's ``(state, due_at)`` index with each row's
channel read: about three seconds for a million messages a week on SQLite, so the console
counts them again only every so often (``messages``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.figures import DayCount, count_messages, stored_message_counts
from core.measure.kpis import KpiValue, kpi_value
from core.measure.snapshots import PROGRAMME, SnapshotDay, kpi_trends
from core.models import CustomerStage, KpiSnapshot
from core.outbox import waiting_messages
from core.program import Program
from core.scheduler.records import JobRecord, NodeStatus, recent_job_runs, scheduler_nodes
from core.settings import Settings

TREND_DAYS = 30
"""How many days of snapshots the dashboard's sparklines span."""
FUNNEL_KPIS = ("coverage", "conversion")
"""The stage KPIs the funnel shows beside each stage's size."""


@dataclass(frozen=True)
class StageRow:
    """One lifecycle stage on the funnel."""

    name: str
    objective: str
    customers: int
    kpis: dict[str, KpiValue]
    """From the latest snapshot (KPI name -> value and target); empty without one."""


@dataclass(frozen=True)
class MessageTally:
    """Messages of one channel in one outcome, due today and this week."""

    channel: str
    outcome: str
    today: int
    week: int


@dataclass(frozen=True)
class MessageTallies:
    """The week's messages by channel and outcome, and when they were counted."""

    tallies: list[MessageTally]
    counted_at: datetime
    stored: bool
    """Counted by the scheduler (and stored), not by the reader a moment ago."""


@dataclass(frozen=True)
class SchedulerHealth:
    """Who leads, how fresh their heartbeat is, what waits and what failed lately."""

    nodes: list[NodeStatus]
    waiting: int
    """Outbox messages due and not yet sent."""
    failures: list[JobRecord]

    @property
    def leader(self) -> NodeStatus | None:
        return next((node for node in self.nodes if node.role == "leader"), None)


@dataclass(frozen=True)
class Overview:
    """The dashboard, as of one moment."""

    stages: list[StageRow]
    snapshot_day: date | None
    """The day the KPIs describe; None when no snapshot was written yet."""
    programme: dict[str, KpiValue]
    messages: MessageTallies
    health: SchedulerHealth
    trends: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    """Stage (``""`` for the program) -> KPI -> its daily values, oldest first."""

    @property
    def automated_share(self) -> KpiValue | None:
        return self.programme.get("automated_share")


async def dashboard_overview(
    session: AsyncSession,
    program: Program,
    settings: Settings,
    now: datetime,
    *,
    messages: MessageTallies | None = None,
) -> Overview:
    """The dashboard of ``program`` as of ``now``; ``messages``, when given, are the
    tallies of :func:`message_tallies` read a moment ago, shown again instead of read."""
    zone = settings.zone
    today = now.astimezone(zone).date()
    sizes = dict(
        (
            await session.execute(
                select(CustomerStage.stage, func.count()).group_by(CustomerStage.stage)
            )
        ).all()
    )
    snapshot_day = await session.scalar(select(func.max(KpiSnapshot.day)))
    trends = await kpi_trends(session, until=today, days=TREND_DAYS) if snapshot_day else {}
    latest = {scope: series[-1] for scope, series in trends.items() if series}
    stages = [
        StageRow(
            stage.name,
            stage.spec.objective,
            int(sizes.get(stage.name, 0)),
            _kpis(latest.get(stage.name), FUNNEL_KPIS),
        )
        for stage in program.stages
    ]
    programme = latest.get(PROGRAMME)
    return Overview(
        stages=stages,
        snapshot_day=snapshot_day,
        programme=_kpis(programme, tuple(programme.values) if programme else ()),
        messages=await message_tallies(session, settings, now) if messages is None else messages,
        health=SchedulerHealth(
            nodes=await scheduler_nodes(session, now),
            waiting=await waiting_messages(session),
            failures=await recent_job_runs(session, limit=5, failed_only=True),
        ),
        trends={
            scope: {kpi: _series(series, kpi) for kpi in series[-1].values}
            for scope, series in trends.items()
            if series
        },
    )


def _kpis(day: SnapshotDay | None, names: tuple[str, ...]) -> dict[str, KpiValue]:
    if day is None:
        return {}
    return {
        name: kpi_value(name, day.values.get(name), day.targets.get(name))
        for name in names
        if name in day.values
    }


def _series(days: list[SnapshotDay], kpi: str) -> list[float]:
    return [value for day in days if (value := day.values.get(kpi)) is not None]


async def message_tallies(
    session: AsyncSession, settings: Settings, now: datetime
) -> MessageTallies:
    """Messages due this week (the last seven days, today included), by channel and state:
    as the scheduler last counted them, or counted now if it has not yet."""
    stored = await stored_message_counts(session)
    if stored is not None:
        counts, counted_at = stored
        return MessageTallies(_tallies(counts, now, settings), counted_at, stored=True)
    counts = await count_messages(session, settings, now)
    return MessageTallies(_tallies(counts, now, settings), now, stored=False)


def _tallies(counts: list[DayCount], now: datetime, settings: Settings) -> list[MessageTally]:
    """``counts`` summed per channel and state over the week up to ``now``'s day, and
    on that day alone."""
    today = now.astimezone(settings.zone).date()
    week_start = today - timedelta(days=6)
    sums: dict[tuple[str, str], list[int]] = {}
    for count in counts:
        if count.day < week_start:
            continue
        tally = sums.setdefault((count.channel, count.state), [0, 0])
        tally[0] += count.messages if count.day >= today else 0
        tally[1] += count.messages
    return [
        MessageTally(channel, state, today_count, week)
        for (channel, state), (today_count, week) in sorted(sums.items())
    ]
