"""Goal attribution: which members of each arm of every campaign run reached the goal.

A run's *treated* arm is its outbox rows that were sent (state ``sent``); its *control*
arm is the rows the planner kept back (state ``control``: same audience, same contact
policy, chosen by a hash of campaign and customer, never sent). A member of either arm
*converts* when a goal event (the goal's type, matching its ``event_rule`` if it has
one) happens after the run was planned and at most the goal's window later: the
interval ``(planned_at, planned_at + within]``. Both arms are judged on that one
clock, the run's, so the comparison is fair: a held message (quiet hours) or a slow
delivery does not move the treated arm's window.

Everything is read as of a moment ``as_of`` (the clock's now by default): runs planned
later and events later are left out, so the figures for a past moment can be worked out
again. A run is *final* once its window closed (``planned_at + within <= as_of``); the
runs still open are returned with the conversions so far, marked not final, and the
totals of :class:`CampaignGoal` count final runs only.

Per goal there is one statement, grouped per run and arm, whatever the number of members
or of campaigns: the members joined to the goal events of their window. Campaigns with
the same goal are read together, so the goal events of a period are read once, not once
a campaign (a hundred campaigns with a purchase goal read the month's purchases once).
The statement starts from the goal events, bounded by the campaigns' earliest run and
latest window end, and reads them, and each of their customers' runs and arms, from
indexes alone; members are counted per run and arm from an index too. A customer in
several runs is a member of each.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from pydantic import ValidationError
from sqlalchemy import (
    ColumnElement,
    Table,
    and_,
    func,
    literal,
    literal_column,
    select,
    true,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.dialect import backend_of
from core.db.moments import shifted
from core.errors import CampaignError
from core.models import Campaign, CampaignRun, Event, OutboxMessage
from core.program.goals import Goal, compile_goal
from core.program.model import GoalSpec, ParamValue
from core.rules import RuleError
from core.rules.compiler import EVENT_SOURCE

TREATED = "sent"
CONTROL = "control"
_ARMS = (TREATED, CONTROL)
_OUTBOX: Table = OutboxMessage.__table__  # type: ignore[assignment]
_RUNS: Table = CampaignRun.__table__  # type: ignore[assignment]
_EVENTS: Table = Event.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class Arm:
    """One arm of a run (or of several): its members, how many converted, and the goal
    events' summed value (None when the goal has no ``value``)."""

    members: int = 0
    converted: int = 0
    revenue: float | None = None

    def __add__(self, other: Arm) -> Arm:
        revenue = None
        if self.revenue is not None or other.revenue is not None:
            revenue = (self.revenue or 0.0) + (other.revenue or 0.0)
        return Arm(self.members + other.members, self.converted + other.converted, revenue)


@dataclass(frozen=True)
class RunGoal:
    """One planned run: both arms, and whether its goal window had closed at ``as_of``."""

    run_id: int
    run_key: str
    planned_at: datetime
    closes_at: datetime | None
    """When the goal window ends; None for a campaign without a goal."""
    final: bool
    treated: Arm
    control: Arm


@dataclass(frozen=True)
class CampaignGoal:
    """One campaign's runs as of ``as_of``, with the goal they were judged on."""

    campaign_id: int
    name: str
    kind: str
    control_percent: float
    """The control group the campaign keeps now (0: none)."""
    goal: GoalSpec | None
    runs: list[RunGoal]
    """Planned runs, oldest first."""

    @property
    def final_runs(self) -> list[RunGoal]:
        return [run for run in self.runs if run.final]

    @property
    def open_runs(self) -> list[RunGoal]:
        return [run for run in self.runs if not run.final]

    @property
    def treated(self) -> Arm:
        """The treated arm over the final runs."""
        return sum((run.treated for run in self.final_runs), Arm())

    @property
    def control(self) -> Arm:
        """The control arm over the final runs."""
        return sum((run.control for run in self.final_runs), Arm())

    @property
    def sent(self) -> int:
        """Messages sent by every run, open ones included."""
        return sum(run.treated.members for run in self.runs)

    @property
    def kept_back(self) -> int:
        """Control members of every run, open ones included."""
        return sum(run.control.members for run in self.runs)


class GoalDefinitionError(CampaignError):
    """A stored campaign's goal cannot be measured (its definition no longer validates)."""


def stored_goal(campaign: Campaign) -> GoalSpec | None:
    """The goal in a stored campaign's definition, or None if it has none."""
    data = campaign.definition.get("goal")
    if data is None:
        return None
    try:
        return GoalSpec.model_validate(data)
    except ValidationError as error:
        raise GoalDefinitionError(
            f"campaign `{campaign.name}`: its goal is invalid: {error}"
        ) from None


async def measure_goals(
    session: AsyncSession,
    campaigns: Sequence[Campaign],
    as_of: datetime,
    params: Mapping[str, ParamValue] | None = None,
) -> list[CampaignGoal]:
    """Both arms of every planned run of ``campaigns`` as of ``as_of``, in the order given.
    ``params`` are the program's named constants that goal event rules may read."""
    ids = [campaign.id for campaign in campaigns]
    runs = await _planned_runs(session, ids, as_of)
    members = await _members(session, ids, as_of)
    specs = {campaign.id: stored_goal(campaign) for campaign in campaigns}
    goals: dict[int, Goal] = {}
    # Campaigns by goal (whether it counts revenue aside: the one statement sums the
    # values either way), so each goal's events are read once.
    alike: dict[str, list[int]] = {}
    for campaign in campaigns:
        spec = specs[campaign.id]
        if spec is not None:
            goals[campaign.id] = _compiled(campaign.name, spec, params or {})
            if runs.get(campaign.id):
                key = spec.model_copy(update={"value": None}).model_dump_json()
                alike.setdefault(key, []).append(campaign.id)
    converted: dict[tuple[int, str], tuple[int, float]] = {}
    for same in alike.values():
        their_runs = [run for campaign_id in same for run in runs[campaign_id]]
        converted |= await _converted(session, same, goals[same[0]], their_runs, as_of)
    return [
        CampaignGoal(
            campaign_id=campaign.id,
            name=campaign.name,
            kind=campaign.kind,
            control_percent=float(campaign.definition.get("control", 0) or 0),
            goal=specs[campaign.id],
            runs=[
                _run_goal(run, goals.get(campaign.id), members, converted, as_of)
                for run in runs.get(campaign.id, [])
            ],
        )
        for campaign in campaigns
    ]


def _compiled(name: str, spec: GoalSpec, params: Mapping[str, ParamValue]) -> Goal:
    try:
        return compile_goal(spec, params)
    except RuleError as error:
        raise GoalDefinitionError(
            f"campaign `{name}`: its goal's event rule does not compile: {error}"
        ) from None


@dataclass(frozen=True)
class _Run:
    id: int
    key: str
    planned_at: datetime


async def _planned_runs(
    session: AsyncSession, campaign_ids: Iterable[int], as_of: datetime
) -> dict[int, list[_Run]]:
    runs = _RUNS.c
    rows = await session.execute(
        select(runs.campaign_id, runs.id, runs.run_key, runs.planned_at)
        .where(
            runs.campaign_id.in_(list(campaign_ids)),
            runs.status == "planned",
            runs.planned_at <= as_of,
        )
        .order_by(runs.planned_at, runs.id)
    )
    found: dict[int, list[_Run]] = {}
    for campaign_id, run_id, key, planned_at in rows:
        found.setdefault(campaign_id, []).append(_Run(run_id, key, planned_at))
    return found


async def _members(
    session: AsyncSession, campaign_ids: Iterable[int], as_of: datetime
) -> dict[tuple[int, str], int]:
    """Members per (run, arm) of every planned run of the campaigns: a count per run and
    arm through the outbox's (run_id, state) index alone. Grouping the rows instead would
    sort every member (9 s for 5 million on SQLite, against 0.6 s for the counts)."""
    outbox, runs = _OUTBOX.c, _RUNS.c
    arms = union_all(*(select(literal(arm).label("state")) for arm in _ARMS)).subquery("arms")
    members = (
        select(func.count())
        .where(outbox.run_id == runs.id, outbox.state == arms.c.state)
        .scalar_subquery()
    )
    rows = await session.execute(
        select(runs.id, arms.c.state, members)
        .select_from(_RUNS.join(arms, true()))
        .where(*_planned(campaign_ids, as_of))
    )
    return {(run_id, state): count for run_id, state, count in rows if count}


def _planned(campaign_ids: Iterable[int], as_of: datetime) -> list[ColumnElement[bool]]:
    runs = _RUNS.c
    return [
        runs.campaign_id.in_(list(campaign_ids)),
        runs.status == "planned",
        runs.planned_at <= as_of,
    ]


async def _converted(
    session: AsyncSession,
    campaign_ids: Sequence[int],
    goal: Goal,
    runs: Sequence[_Run],
    as_of: datetime,
) -> dict[tuple[int, str], tuple[int, float]]:
    """Converted members and their goal events' summed value per (run, arm) of campaigns
    that share ``goal`` (its ``revenue`` aside); ``runs`` are theirs."""
    outbox, planned, events = _OUTBOX.c, _RUNS.c, _EVENTS.c
    window_end = shifted(backend_of(session), planned.planned_at, goal.within)
    # Plain bounds next to the per-row window: events outside every run's window are left
    # in the index, never joined.
    earliest = min(run.planned_at for run in runs)
    latest = min(max(run.planned_at for run in runs) + goal.within, as_of)
    on_goal: list[ColumnElement[bool]] = [
        events.type == goal.event,
        events.occurred_at > earliest,
        events.occurred_at <= latest,
        events.occurred_at > planned.planned_at,
        events.occurred_at <= window_end,
    ]
    if goal.event_rule is not None:
        on_goal.append(goal.event_rule.condition(as_of, EVENT_SOURCE))
    # From the goal events to their customers' members: the events index gives them in
    # customer order, and the outbox's (customer_id, ...) index holds each member's run
    # and arm. "+ 0" and "|| ''": on the bare columns SQLite would start from the members
    # instead (through the state index) and read the events once per member (5 million
    # probes against 600,000 events at a million customers).
    per_member = (
        select(outbox.run_id, outbox.state, func.sum(events.value).label("value"))
        .select_from(
            _EVENTS.join(_OUTBOX, outbox.customer_id == events.customer_id + 0).join(
                _RUNS, planned.id == outbox.run_id
            )
        )
        .where(
            and_(*on_goal),
            *_planned(campaign_ids, as_of),
            outbox.state.concat(literal_column("''")).in_(_ARMS),
        )
        .group_by(outbox.customer_id, outbox.run_id, outbox.state)
        .subquery()
    )
    rows = await session.execute(
        select(
            per_member.c.run_id,
            per_member.c.state,
            func.count(),
            func.sum(per_member.c.value),
        ).group_by(per_member.c.run_id, per_member.c.state)
    )
    # Money values are cents, so their sum is too: rounded to them, it does not depend on
    # the order the database added the (binary floating-point, on SQLite) values in.
    return {
        (run_id, state): (count, round(float(total or 0), 2))
        for run_id, state, count, total in rows
    }


def _run_goal(
    run: _Run,
    goal: Goal | None,
    members: Mapping[tuple[int, str], int],
    converted: Mapping[tuple[int, str], tuple[int, float | None]],
    as_of: datetime,
) -> RunGoal:
    def arm(state: str) -> Arm:
        count, revenue = converted.get((run.id, state), (0, 0.0))
        worth = revenue if goal is not None and goal.revenue else None
        return Arm(members.get((run.id, state), 0), count, worth)

    closes_at = None if goal is None else run.planned_at + goal.within
    final = closes_at is not None and closes_at <= as_of
    return RunGoal(run.id, run.key, run.planned_at, closes_at, final, arm(TREATED), arm(CONTROL))
