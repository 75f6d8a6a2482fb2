"""Campaign runs: which are due, planning them, and recording what each one did.

A run is a ``campaign_runs`` row keyed by its occasion (``run_key``): a cron
slot of a cycle campaign, a "run now" request, a launch. A run is created
``pending`` and becomes ``planned`` in the transaction that writes its
outbox rows, so planning a key that is already planned enqueues nothing.
After downtime a cycle campaign runs once, for its latest missed slot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.triggers.base import BaseTrigger
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import Store
from core.db.dialect import backend_of, serialize_writers, upsert
from core.durations import parse_duration
from core.errors import CampaignError
from core.models import Campaign, CampaignRun
from core.planner.audience import Audience, resolve_audience
from core.planner.tick import RunPlan, RunRequest, plan_tick
from core.policy import Outcome
from core.program import Program
from core.program.model import PREFERRED, CampaignSpec
from core.program.schedules import schedule_trigger
from core.rules import RuleError, parse_rule
from core.settings import Settings

_LOOK_BACK = (timedelta(hours=1), timedelta(days=1), timedelta(days=32), timedelta(days=400))
"""Windows searched, shortest first, for a cycle's latest missed slot: few cron steps each."""
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class PlannedRun:
    """A run as planned: its campaign, key and the counts by outcome."""

    plan: RunPlan
    run_key: str
    occasion: str


async def plan_due_runs(
    store: Store, program: Program, settings: Settings, now: datetime
) -> list[PlannedRun]:
    """The planning tick: every active cycle campaign whose cron slot came round, and every
    pending run whose time has come, planned together in one transaction."""
    async with store.transaction() as session:
        await serialize_writers(session, "planner")
        await _schedule_cycle_runs(session, settings, now)
        due = await _pending_runs(session, now)
        return await _plan(session, due, program, settings, now)


async def plan_runs(
    store: Store, program: Program, settings: Settings, now: datetime, run_ids: Sequence[int]
) -> list[PlannedRun]:
    """Plan just the pending runs ``run_ids`` (a launch, a "run now") in one transaction."""
    async with store.transaction() as session:
        await serialize_writers(session, "planner")
        due = await _pending_runs(session, now, run_ids)
        return await _plan(session, due, program, settings, now)


async def request_run(
    session: AsyncSession,
    campaign: Campaign,
    run_key: str,
    occasion: str,
    due_at: datetime,
    requested_by: str | None = None,
) -> int:
    """Record a pending run of ``campaign`` (nothing new if ``run_key`` exists); its id."""
    run = await requested_run(session, campaign, run_key, occasion, due_at, requested_by)
    return run.id


async def requested_run(
    session: AsyncSession,
    campaign: Campaign,
    run_key: str,
    occasion: str,
    due_at: datetime,
    requested_by: str | None = None,
) -> CampaignRun:
    """:func:`request_run`, returning the run itself for a caller that plans and records
    it at once (no second read to load it)."""
    backend = backend_of(session)
    await session.execute(
        upsert(backend, CampaignRun.__table__)
        .values(
            campaign_id=campaign.id,
            run_key=run_key,
            occasion=occasion,
            status="pending",
            due_at=due_at,
            requested_by=requested_by,
            outcomes={},
        )
        .on_conflict_do_nothing(index_elements=["campaign_id", "run_key"])
    )
    run = await session.scalar(
        select(CampaignRun).where(
            CampaignRun.campaign_id == campaign.id, CampaignRun.run_key == run_key
        )
    )
    assert run is not None
    return run


async def _schedule_cycle_runs(session: AsyncSession, settings: Settings, now: datetime) -> None:
    """A pending run for the latest cron slot of each active cycle campaign that has not
    had that slot yet (missed slots coalesce into the latest); with the ``skip`` policy
    for missed cycles, none for a slot older than the grace period."""
    zone = settings.zone
    scheduler = settings.scheduler
    oldest = (
        now - timedelta(minutes=scheduler.missed_cycle_grace_minutes)
        if scheduler.missed_cycles == "skip"
        else None
    )
    last_slot = (
        select(CampaignRun.campaign_id, func.max(CampaignRun.due_at).label("due_at"))
        .where(CampaignRun.occasion == "schedule")
        .group_by(CampaignRun.campaign_id)
        .subquery()
    )
    cycles = await session.execute(
        select(Campaign, last_slot.c.due_at)
        .outerjoin(last_slot, last_slot.c.campaign_id == Campaign.id)
        .where(Campaign.kind == "cycle", Campaign.status == "active")
    )
    for campaign, last_due in cycles.all():
        schedule = campaign.definition.get("schedule")
        if not schedule:
            continue
        after = max(campaign.schedule_from, last_due or campaign.schedule_from)
        trigger = schedule_trigger(schedule, zone, campaign.schedule_from)
        slot = latest_slot(trigger, after, now)
        if slot is not None and (oldest is None or slot >= oldest):
            key = f"schedule:{slot.astimezone(UTC).isoformat(timespec='minutes')}"
            await request_run(session, campaign, key, "schedule", slot)


def latest_slot(trigger: BaseTrigger, after: datetime, now: datetime) -> datetime | None:
    """The latest fire time of ``trigger`` in ``(after, now]``, or None."""
    for back in _LOOK_BACK:
        start = max(after, now - back)
        latest = None
        fire = trigger.get_next_fire_time(None, start + _MICROSECOND)
        while fire is not None and fire <= now:
            latest = fire
            fire = trigger.get_next_fire_time(fire, fire + _MICROSECOND)
        if latest is not None or start == after:
            return latest
    return None


async def _pending_runs(
    session: AsyncSession, now: datetime, run_ids: Sequence[int] | None = None
) -> list[tuple[CampaignRun, Campaign]]:
    query = (
        select(CampaignRun, Campaign)
        .join(Campaign, Campaign.id == CampaignRun.campaign_id)
        .where(
            CampaignRun.status == "pending",
            CampaignRun.due_at <= now,
            Campaign.status == "active",
        )
        .order_by(CampaignRun.id)
    )
    if run_ids is not None:
        query = query.where(CampaignRun.id.in_(run_ids))
    return [(run, campaign) for run, campaign in await session.execute(query)]


async def _plan(
    session: AsyncSession,
    due: list[tuple[CampaignRun, Campaign]],
    program: Program,
    settings: Settings,
    now: datetime,
) -> list[PlannedRun]:
    requests: list[RunRequest] = []
    for run, campaign in due:
        try:
            requests.append(await run_request(session, run.id, campaign, program))
        except CampaignError as error:
            run.status, run.error, run.planned_at = "failed", str(error), now
    plans = await plan_tick(session, requests, settings.policy, settings.zone, now, write=True)
    runs = {run.id: run for run, _ in due}
    for plan in plans:
        record_plan(runs[plan.run_id], plan, now)
    return [
        PlannedRun(plan, runs[plan.run_id].run_key, runs[plan.run_id].occasion) for plan in plans
    ]


async def run_request(
    session: AsyncSession, run_id: int, campaign: Campaign, program: Program
) -> RunRequest:
    """What the tick needs of a stored campaign; raises :class:`CampaignError` when its
    target no longer resolves (a segment removed, a rule the program's params break)."""
    spec = CampaignSpec.model_validate(campaign.definition)
    return await request_for_spec(session, run_id, campaign.id, spec, program)


async def request_for_spec(
    session: AsyncSession, run_id: int, campaign_id: int, spec: CampaignSpec, program: Program
) -> RunRequest:
    """A :class:`RunRequest` for ``spec`` (stored or not yet: a preview)."""
    audience = await target_audience(session, spec, program)
    if audience is None:
        raise CampaignError(
            f"campaign `{spec.name}` has no target: it reaches whom its trigger matches, "
            "when the trigger fires"
        )
    return spec_request(run_id, campaign_id, spec, audience)


async def target_audience(
    session: AsyncSession, spec: CampaignSpec, program: Program
) -> Audience | None:
    """The audience of ``spec``'s target (None: it has none, being triggered)."""
    target = spec.target
    if target is None:
        return None
    try:
        rule = None if target.rule is None else parse_rule(target.rule, params=program.params)
    except RuleError as error:
        raise CampaignError(f"campaign `{spec.name}`: its target rule: {error}") from None
    return await resolve_audience(session, target.stage, target.segment, rule)


def spec_request(
    run_id: int, campaign_id: int, spec: CampaignSpec, audience: Audience
) -> RunRequest:
    """A :class:`RunRequest` that plans ``spec`` for ``audience``."""
    return RunRequest(
        run_id=run_id,
        campaign_id=campaign_id,
        campaign=spec.name,
        audience=audience,
        channel=spec.channel_choices[0],
        marketing=spec.category == "marketing",
        priority=spec.priority,
        variants=tuple(spec.variants),
        control_percent=spec.control,
        cooldown=None if spec.cooldown is None else parse_duration(spec.cooldown),
        preferred_channels=spec.channel_choices if spec.channel == PREFERRED else (),
        best_time=spec.send_time == "best",
    )


def record_plan(run: CampaignRun, plan: RunPlan, now: datetime) -> None:
    """Write a plan's counts onto its run, which is now planned."""
    run.status = "planned"
    run.planned_at = now
    run.targeted = plan.targeted
    run.queued = plan.count(Outcome.QUEUED)
    run.held = plan.count(Outcome.HELD)
    run.control = plan.count(Outcome.CONTROL)
    run.excluded = plan.excluded
    run.outcomes = {
        "counts": {outcome.key: count for outcome, count in sorted(plan.outcomes.items())},
        "lost_to": dict(sorted(plan.lost_to.items())),
    }


async def plans_since(session: AsyncSession, since: datetime) -> list[RunPlan]:
    """The runs planned at or after ``since``, as their plans (what :func:`record_plan`
    wrote), in the order they were planned."""
    rows = await session.execute(
        select(CampaignRun, Campaign.name)
        .join(Campaign, Campaign.id == CampaignRun.campaign_id)
        .where(CampaignRun.status == "planned", CampaignRun.planned_at >= since)
        .order_by(CampaignRun.id)
    )
    return [
        RunPlan(
            run.id,
            name,
            {Outcome[key.upper()]: count for key, count in run.outcomes["counts"].items()},
            dict(run.outcomes.get("lost_to", {})),
        )
        for run, name in rows.all()
    ]
