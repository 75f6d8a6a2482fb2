"""Stored campaigns as operators see and steer them: list, inspect, pause and resume.

The CLI and the console call these; they return plain frozen dataclasses, so
nothing outside a session holds ORM objects. Pause and resume only change a
campaign's status: catching up on (or skipping) the cron slots missed while
paused is the planner's decision, so resume leaves ``schedule_from`` alone.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, cast
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core import clock
from core.audit import record_action
from core.errors import CampaignError
from core.models import Campaign, CampaignRun
from core.policy.outcomes import EXCLUSIONS, Outcome
from core.program.model import CampaignSpec
from core.program.schedules import schedule_trigger

RUN_HISTORY = 20
"""How many of its latest runs :func:`campaign_detail` returns."""


@dataclass(frozen=True)
class RunCounts:
    """What one run did with its audience."""

    targeted: int
    queued: int
    held: int
    control: int
    excluded: int

    @classmethod
    def of(cls, run: CampaignRun) -> RunCounts:
        return cls(run.targeted, run.queued, run.held, run.control, run.excluded)


@dataclass(frozen=True)
class LastRun:
    """A campaign's latest planned run."""

    planned_at: datetime
    counts: RunCounts


@dataclass(frozen=True)
class CampaignSummary:
    """A stored campaign as lists show it."""

    name: str
    kind: str
    origin: str
    status: str
    priority: int
    channel: str
    category: str
    target: str
    """The target in words: ``stage active, segment value-high, where <rule>``."""
    schedule: str | None
    next_run_at: datetime | None
    """The next cron slot (UTC) of an active cycle campaign; None for any other."""
    last_run: LastRun | None


@dataclass(frozen=True)
class RunRecord:
    """One run of a campaign, with every count and the outcome of each exclusion."""

    run_key: str
    occasion: str
    status: str
    due_at: datetime
    planned_at: datetime | None
    requested_by: str | None
    counts: RunCounts
    outcomes: Mapping[str, Any]
    error: str | None

    @property
    def exclusions(self) -> list[tuple[str, int]]:
        """Whom the run left out, by reason in the policy's order (``no consent``,
        ``cooldown``...), then ``lost to CAMPAIGN`` for each campaign that took customers."""
        counts = self.outcomes.get("counts", {})
        reasons = [
            (outcome.key.replace("_", " "), counts[outcome.key])
            for outcome in EXCLUSIONS
            if outcome is not Outcome.LOST and counts.get(outcome.key)
        ]
        lost_to = sorted(self.outcomes.get("lost_to", {}).items())
        return reasons + [(f"lost to {winner}", count) for winner, count in lost_to]


@dataclass(frozen=True)
class CampaignDetail:
    """One campaign: its summary, stored definition and latest runs (latest first)."""

    summary: CampaignSummary
    description: str | None
    definition: Mapping[str, Any]
    schedule_from: datetime
    program_version: int | None
    created_at: datetime
    updated_at: datetime
    runs: list[RunRecord]


@dataclass(frozen=True)
class StatusChange:
    """The outcome of a pause or resume: the status before and after, and what to tell."""

    name: str
    previous: str
    status: str
    message: str

    @property
    def changed(self) -> bool:
        return self.previous != self.status


_LATER_FIELDS = ("trigger", "channels", "send_time")
"""Spec fields added after campaigns were first stored: left out at their defaults, so the
digests of campaigns that do not use them stay what they were."""


def campaign_definition(spec: CampaignSpec) -> dict[str, Any]:
    """What ``Campaign.definition`` stores: the spec as JSON, without the later fields that
    hold their defaults (see :data:`_LATER_FIELDS`)."""
    unused = {
        name
        for name in _LATER_FIELDS
        if getattr(spec, name) == CampaignSpec.model_fields[name].default
    }
    return spec.model_dump(mode="json", exclude=unused)


def definition_digest(definition: Mapping[str, Any]) -> str:
    """A definition's digest (canonical JSON): equal digests mean the same campaign."""
    canonical = json.dumps(definition, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def spec_columns(spec: CampaignSpec) -> dict[str, Any]:
    """The stored campaign's columns that ``spec`` decides, the status included."""
    definition = campaign_definition(spec)
    return {
        "kind": spec.kind,
        "status": spec.status,
        "priority": spec.priority,
        "channel": spec.channel,
        "category": spec.category,
        "definition": definition,
        "digest": definition_digest(definition),
    }


def store_campaign(
    session: AsyncSession,
    spec: CampaignSpec,
    *,
    origin: str,
    now: datetime,
    version_id: int | None = None,
) -> Campaign:
    """Add ``spec`` to the session as a new stored campaign, with the status it asks for."""
    campaign = Campaign(
        name=spec.name,
        origin=origin,
        schedule_from=now,
        program_version_id=version_id,
        created_at=now,
        updated_at=now,
        **spec_columns(spec),
    )
    session.add(campaign)
    return campaign


async def list_campaigns(
    session: AsyncSession, now: datetime, time_zone: str, *, include_archived: bool = False
) -> list[CampaignSummary]:
    """The stored campaigns, highest priority first; archived ones only if asked for.

    ``time_zone`` is the program's (the settings' ``time_zone``): cron schedules read in it.
    """
    query = select(Campaign).order_by(Campaign.priority.desc(), Campaign.name)
    if not include_archived:
        query = query.where(Campaign.status != "archived")
    rows = list((await session.execute(query)).scalars())
    last = await _last_runs(session, [row.id for row in rows])
    return [_summary(row, last.get(row.id), now, time_zone) for row in rows]


async def campaign_detail(
    session: AsyncSession, name: str, now: datetime, time_zone: str
) -> CampaignDetail:
    """The campaign called ``name`` with its latest :data:`RUN_HISTORY` runs."""
    row = await _find(session, name)
    runs = (
        await session.execute(
            select(CampaignRun)
            .where(CampaignRun.campaign_id == row.id)
            .order_by(CampaignRun.due_at.desc(), CampaignRun.id.desc())
            .limit(RUN_HISTORY)
        )
    ).scalars()
    last = await _last_runs(session, [row.id])
    return CampaignDetail(
        summary=_summary(row, last.get(row.id), now, time_zone),
        description=row.definition.get("description"),
        definition=dict(row.definition),
        schedule_from=row.schedule_from,
        program_version=row.program_version_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
        runs=[
            RunRecord(
                run_key=run.run_key,
                occasion=run.occasion,
                status=run.status,
                due_at=run.due_at,
                planned_at=run.planned_at,
                requested_by=run.requested_by,
                counts=RunCounts.of(run),
                outcomes=dict(run.outcomes),
                error=run.error,
            )
            for run in runs
        ],
    )


async def pause_campaign(
    session: AsyncSession, name: str, now: datetime | None = None
) -> StatusChange:
    """Pause the campaign: the planner starts no runs of it until it is resumed."""
    return await _set_status(session, name, "paused", now or clock.now())


async def resume_campaign(
    session: AsyncSession, name: str, now: datetime | None = None
) -> StatusChange:
    """Make a paused campaign active again; an archived one cannot be resumed."""
    return await _set_status(session, name, "active", now or clock.now())


async def _set_status(
    session: AsyncSession, name: str, status: Literal["active", "paused"], now: datetime
) -> StatusChange:
    # Locked, so a pause and an apply (or two operators) on PostgreSQL take turns.
    row = await _find(session, name, for_update=True)
    verb = "pause" if status == "paused" else "resume"
    previous = row.status
    if previous == "archived":
        how = (
            "add it back to the program files and run `cadence program apply`"
            if row.origin == "program"
            else "launch it again"
        )
        raise CampaignError(f"campaign `{name}` is archived and cannot be {verb}d; {how}")
    if previous == status:
        return StatusChange(name, previous, status, f"Campaign `{name}` is already {status}.")
    row.status = status
    row.updated_at = now
    record_action(
        session,
        f"campaign.{verb}",
        target=name,
        details={"from": previous, "to": status},
        summary=f"{verb}d campaign {name}",
    )
    message = (
        f"Paused `{name}`: it starts no runs until `cadence campaign resume {name}`."
        if status == "paused"
        else f"Resumed `{name}`: it runs again from its next slot or launch."
    )
    return StatusChange(name, previous, status, message)


async def _find(session: AsyncSession, name: str, *, for_update: bool = False) -> Campaign:
    """The stored campaign ``name``; an unknown name raises, naming close matches."""
    query = select(Campaign).where(Campaign.name == name)
    if for_update:
        query = query.with_for_update()
    row = (await session.execute(query)).scalar_one_or_none()
    if row is not None:
        return row
    names = list((await session.execute(select(Campaign.name))).scalars())
    if not names:
        raise CampaignError(
            f"no campaign named `{name}`: none is stored yet; `cadence program apply` "
            "stores the program's campaigns"
        )
    close = difflib.get_close_matches(name, names, n=3)
    hint = f"did you mean {' or '.join(f'`{match}`' for match in close)}? " if close else ""
    raise CampaignError(f"no campaign named `{name}`; {hint}`cadence campaign list` shows them")


async def _last_runs(session: AsyncSession, campaign_ids: list[int]) -> dict[int, LastRun]:
    """The latest planned run of each campaign in ``campaign_ids``, by campaign id."""
    if not campaign_ids:
        return {}
    # One ranked read for all campaigns, rather than one query per campaign.
    rank = (
        func.row_number()
        .over(
            partition_by=CampaignRun.campaign_id,
            order_by=(CampaignRun.planned_at.desc(), CampaignRun.id.desc()),
        )
        .label("rank")
    )
    ranked = (
        select(CampaignRun.id, rank)
        .where(CampaignRun.campaign_id.in_(campaign_ids), CampaignRun.status == "planned")
        .subquery()
    )
    latest = (
        select(CampaignRun).join(ranked, ranked.c.id == CampaignRun.id).where(ranked.c.rank == 1)
    )
    return {
        run.campaign_id: LastRun(run.planned_at, RunCounts.of(run))
        for run in (await session.execute(latest)).scalars()
        if run.planned_at is not None
    }


def _summary(
    row: Campaign, last_run: LastRun | None, now: datetime, time_zone: str
) -> CampaignSummary:
    schedule = row.definition.get("schedule")
    next_run_at = None
    if row.kind == "cycle" and row.status == "active" and schedule is not None:
        next_run_at = next_slot(schedule, row.schedule_from, now, time_zone)
    return CampaignSummary(
        name=row.name,
        kind=row.kind,
        origin=row.origin,
        status=row.status,
        priority=row.priority,
        channel=row.channel,
        category=row.category,
        target=describe_target(row.definition.get("target") or {}),
        schedule=schedule,
        next_run_at=next_run_at,
        last_run=last_run,
    )


def next_slot(
    schedule: str, schedule_from: datetime, now: datetime, time_zone: str
) -> datetime | None:
    """The first slot of ``schedule`` (read in ``time_zone``) at or after both ``now``
    and ``schedule_from``, in UTC; None if it never comes round."""
    trigger = schedule_trigger(schedule, ZoneInfo(time_zone), schedule_from)
    fire = cast(datetime | None, trigger.get_next_fire_time(None, max(now, schedule_from)))
    return None if fire is None else fire.astimezone(UTC)


def describe_target(target: Mapping[str, Any]) -> str:
    """A stored target in words: ``stage active, segment value-high, where <rule>``."""
    parts = [f"{key} {target[key]}" for key in ("stage", "segment") if target.get(key)]
    if target.get("rule"):
        parts.append(f"where {' '.join(str(target['rule']).split())}")
    return ", ".join(parts) or "-"
