"""``plan`` and ``apply``: bring the stored campaigns and segments in line with the program files.

Like a schema migration, applying the program is two steps. :func:`plan_program`
compares the files with what the database runs now and estimates, for each
campaign whose target moves, how its audience changes; :func:`apply_program`
carries the plan out in one transaction and records it as a
:class:`~core.models.ProgramVersion`. Applying the same files again finds
nothing to do and writes nothing, so an operator's pause of a campaign
persists until its definition in the files changes.

Campaigns launched by hand (``origin = "launch"``) are not the program's:
apply never changes them, and refuses files that reuse one of their names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import current_actor, record_action
from core.campaigns import campaign_definition, definition_digest, spec_columns, store_campaign
from core.db import Store
from core.db.dialect import serialize_writers
from core.errors import CadenceError, CampaignError
from core.models import Campaign, ProgramVersion, Segment
from core.planner.audience import resolve_audience
from core.program import Program
from core.program.model import CampaignSpec, ParamValue, SegmentSpec
from core.rules import parse_rule
from core.segments import sync_segments

PROGRAM_ORIGIN = "program"
"""``Campaign.origin`` of the campaigns the program files define."""
ARCHIVED = "archived"
_SEGMENT_FIELDS = ("description", "stage", "rule", "tags")
"""What a stored segment keeps of its spec; a difference in any is a changed segment."""


def program_digest(program: Program) -> str:
    """The digest of what applying ``program`` stores: campaigns, segments and params.

    Specs are sorted by name, so moving an entry within or between files is no change.
    """

    def by_name(specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(specs, key=lambda spec: str(spec["name"]))

    # The canonical JSON of campaign digests serves the whole program as well.
    return definition_digest(
        {
            "campaigns": by_name([campaign_definition(c.spec) for c in program.campaigns]),
            "segments": by_name([s.spec.model_dump(mode="json") for s in program.segments]),
            "params": program.params,
        }
    )


@dataclass(frozen=True)
class AudienceEstimate:
    """How many customers a campaign targets under its stored and its new definition.

    ``None`` is unknown: there is no stored definition, or the target's segment is new
    or changed in the files, so its members are known only after the next refresh.
    Counts read the membership of the last stage and segment refresh.
    """

    before: int | None
    after: int | None

    @property
    def delta(self) -> int | None:
        if self.before is None or self.after is None:
            return None
        return self.after - self.before

    def describe(self) -> str:
        """``1,234 → 1,456 (+222)``; ``1,456`` with no stored count; ``?`` for unknown."""

        def count(value: int | None) -> str:
            return "?" if value is None else f"{value:,}"

        if self.before is None:
            return count(self.after)
        text = f"{count(self.before)} → {count(self.after)}"
        return text if self.delta is None else f"{text} ({self.delta:+,})"


@dataclass(frozen=True)
class Change:
    """One campaign or segment the plan adds, changes or removes."""

    name: str
    fields: tuple[str, ...] = ()
    """For a changed entry, the fields of its definition that differ."""
    audience: AudienceEstimate | None = None
    """For an added or changed campaign, how its audience moves."""


@dataclass(frozen=True)
class Diff:
    """What the plan does to one kind of entry (campaigns or segments)."""

    added: tuple[Change, ...] = ()
    changed: tuple[Change, ...] = ()
    removed: tuple[Change, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.removed)

    def names(self) -> dict[str, list[str]]:
        """The names per action, as :attr:`ProgramVersion.changes` records them."""
        return {
            "added": [change.name for change in self.added],
            "changed": [change.name for change in self.changed],
            "removed": [change.name for change in self.removed],
        }

    def counts(self) -> str:
        """``2 added, 1 changed, 0 removed``."""
        return f"{len(self.added)} added, {len(self.changed)} changed, {len(self.removed)} removed"


@dataclass(frozen=True)
class ProgramPlan:
    """The difference between the program files and what the database runs."""

    digest: str
    """The files' :func:`program_digest`."""
    applied_digest: str | None
    """The digest of the latest applied program version; None if none was applied."""
    campaigns: Diff
    segments: Diff
    conflicts: tuple[str, ...] = ()
    """Campaigns of the files whose name a launched campaign already holds: apply refuses."""

    @property
    def changed(self) -> bool:
        """Whether applying would add, change or remove any campaign or segment."""
        return not (self.campaigns.empty and self.segments.empty)

    @property
    def up_to_date(self) -> bool:
        """Nothing to apply: no changes, and the latest version has these files' digest
        (a changed param alone still makes a new version, to record it)."""
        return not self.changed and self.digest == self.applied_digest

    def changes(self) -> dict[str, dict[str, list[str]]]:
        """The names per kind and action, as :attr:`ProgramVersion.changes` records them."""
        return {"campaigns": self.campaigns.names(), "segments": self.segments.names()}

    def summary(self) -> str:
        """``campaigns: 1 added, 0 changed, 0 removed; segments: ...``."""
        return f"campaigns: {self.campaigns.counts()}; segments: {self.segments.counts()}"


@dataclass(frozen=True)
class ApplyResult:
    """What :func:`apply_program` did: its plan, and the version it recorded."""

    plan: ProgramPlan
    version: int | None
    """The new ``program_versions`` id; None when the database already ran these files."""

    @property
    def applied(self) -> bool:
        return self.version is not None


async def plan_program(session: AsyncSession, program: Program, now: datetime) -> ProgramPlan:
    """What applying ``program`` at ``now`` would change, with audience estimates."""
    plan, _ = await _plan(session, program, now)
    return plan


async def apply_program(store: Store, program: Program, now: datetime) -> ApplyResult:
    """Apply ``program`` in one transaction; nothing is written when nothing changed.

    Segments are synced (:func:`core.segments.sync_segments`); new campaigns are
    stored, changed ones updated (their status reset to the spec's), and
    campaigns gone from the files archived. Unchanged campaigns are left
    alone, so a pause persists. Raises :class:`CampaignError` when a campaign
    of the files has the name of a launched one.
    """
    async with store.transaction() as session:
        # Two applies at once would both see the old state and both record a version.
        await serialize_writers(session, "program")
        plan, stored = await _plan(session, program, now)
        if plan.conflicts:
            names = ", ".join(f"`{name}`" for name in plan.conflicts)
            raise CampaignError(
                f"the program files define {names}, which a launched campaign is already "
                "called; rename it in the files, then run `cadence program apply` again"
            )
        if plan.up_to_date:
            return ApplyResult(plan, None)

        await sync_segments(session, program, now)
        version = ProgramVersion(
            applied_at=now, actor=current_actor(), digest=plan.digest, changes=plan.changes()
        )
        session.add(version)
        await session.flush()
        specs = {campaign.name: campaign.spec for campaign in program.campaigns}
        for change in (*plan.campaigns.added, *plan.campaigns.changed):
            _store_campaign(session, stored.get(change.name), specs[change.name], now, version.id)
        removed = [stored[change.name].id for change in plan.campaigns.removed]
        if removed:
            await session.execute(
                update(Campaign)
                .where(Campaign.id.in_(removed))
                .values(status=ARCHIVED, updated_at=now, program_version_id=version.id)
            )
        record_action(
            session,
            "program.apply",
            target=f"program version {version.id}",
            details={"version": version.id, "digest": plan.digest, "changes": plan.changes()},
            summary=f"applied {program.directory}: {plan.summary()}",
        )
        return ApplyResult(plan, version.id)


def _store_campaign(
    session: AsyncSession,
    row: Campaign | None,
    spec: CampaignSpec,
    now: datetime,
    version_id: int,
) -> None:
    """Insert the campaign, or update its stored row to ``spec``."""
    if row is None:
        store_campaign(session, spec, origin=PROGRAM_ORIGIN, now=now, version_id=version_id)
        return
    # Slots before now are not owed to a campaign that was not running, nor to a new
    # schedule: only an unchanged schedule of an active campaign keeps its history.
    if row.status != "active" or row.definition.get("schedule") != spec.schedule:
        row.schedule_from = now
    for column, value in spec_columns(spec).items():
        setattr(row, column, value)
    row.program_version_id, row.updated_at = version_id, now


async def _plan(
    session: AsyncSession, program: Program, now: datetime
) -> tuple[ProgramPlan, dict[str, Campaign]]:
    """The plan, and the stored campaigns by name (apply updates them)."""
    stored = {row.name: row for row in (await session.execute(select(Campaign))).scalars()}
    segments = await _segment_diff(session, program)
    # Members of a segment that is new or changed in the files are not known until the
    # next refresh, so no audience through it can be counted yet.
    unknown = {change.name for change in (*segments.added, *segments.changed)}
    params = program.params

    async def estimate(target: Mapping[str, Any] | None) -> int | None:
        if target is None:  # a triggered campaign reaches whom its trigger matches
            return None
        return await _audience_count(session, target, params, now, unknown)

    added: list[Change] = []
    changed: list[Change] = []
    conflicts: list[str] = []
    for campaign in program.campaigns:
        definition = campaign_definition(campaign.spec)
        row = stored.get(campaign.name)
        if row is not None and row.origin != PROGRAM_ORIGIN:
            conflicts.append(campaign.name)
        elif row is None or (row.status == ARCHIVED and campaign.spec.status != ARCHIVED):
            # An archived row here was removed from the files once and is back now.
            after = await estimate(definition["target"])
            added.append(Change(campaign.name, audience=AudienceEstimate(None, after)))
        elif row.digest != definition_digest(definition):
            before = await _stored_count(session, row, params, now)
            after = await estimate(definition["target"])
            fields = _differing(row.definition, definition)
            changed.append(Change(campaign.name, fields, AudienceEstimate(before, after)))
    names = {campaign.name for campaign in program.campaigns}
    removed = [
        Change(name)
        for name, row in sorted(stored.items())
        if row.origin == PROGRAM_ORIGIN and row.status != ARCHIVED and name not in names
    ]
    latest = await session.execute(
        select(ProgramVersion.digest).order_by(ProgramVersion.id.desc()).limit(1)
    )
    plan = ProgramPlan(
        digest=program_digest(program),
        applied_digest=latest.scalar_one_or_none(),
        campaigns=Diff(tuple(added), tuple(changed), tuple(removed)),
        segments=segments,
        conflicts=tuple(conflicts),
    )
    return plan, stored


async def _stored_count(
    session: AsyncSession, row: Campaign, params: Mapping[str, ParamValue], now: datetime
) -> int | None:
    """How many customers the stored campaign ``row`` targets at ``now``, or None if its
    target no longer resolves (its segment is gone, or its rule reads a removed param)."""
    target = row.definition.get("target")
    if not isinstance(target, Mapping):
        return None
    return await _audience_count(session, target, params, now, set())


async def _audience_count(
    session: AsyncSession,
    target: Mapping[str, Any],
    params: Mapping[str, ParamValue],
    now: datetime,
    unknown_segments: set[str],
) -> int | None:
    """The audience of a target (a :class:`TargetSpec` as JSON), or None if not countable."""
    segment = target.get("segment")
    if segment in unknown_segments:
        return None
    try:
        rule = parse_rule(target["rule"], params=params) if target.get("rule") else None
        audience = await resolve_audience(session, target.get("stage"), segment, rule)
    except CadenceError:  # a rule that no longer parses, a segment not stored
        return None
    return await audience.count(session, now)


async def _segment_diff(session: AsyncSession, program: Program) -> Diff:
    """The program's segments against the stored, non-archived ones."""
    stored = {
        row.name: row
        for row in (
            await session.execute(select(Segment).where(Segment.archived.is_(False)))
        ).scalars()
    }
    added: list[Change] = []
    changed: list[Change] = []
    for definition in program.segments:
        row = stored.get(definition.name)
        if row is None:
            added.append(Change(definition.name))
        elif fields := _differing(_segment_values(row), _spec_values(definition.spec)):
            changed.append(Change(definition.name, fields))
    names = {definition.name for definition in program.segments}
    removed = [Change(name) for name in sorted(stored) if name not in names]
    return Diff(tuple(added), tuple(changed), tuple(removed))


def _segment_values(row: Segment) -> dict[str, Any]:
    return {name: getattr(row, name) for name in _SEGMENT_FIELDS}


def _spec_values(spec: SegmentSpec) -> dict[str, Any]:
    return spec.model_dump(mode="json", include=set(_SEGMENT_FIELDS))


def _differing(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[str, ...]:
    """The keys whose values differ between ``old`` and ``new``, sorted."""
    return tuple(sorted(key for key in old.keys() | new.keys() if old.get(key) != new.get(key)))
