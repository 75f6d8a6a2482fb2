"""The program's journeys in the store: one ``journeys`` row each, and a campaign per send step.

Each send step plans its messages as a stored campaign of its own (kind
``journey``, origin ``journey``), so its runs, outcomes, contact history and
control group are recorded, listed and measured like any other campaign's.
Program apply leaves these campaigns alone: they belong to their journey.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from core.campaigns import definition_digest
from core.errors import CadenceError
from core.models import Campaign, Journey, JourneyState
from core.program import Program
from core.program.journeys import JourneyDefinition, JourneyStep, step_campaign_name

JOURNEY_ORIGIN = "journey"
"""``Campaign.origin`` of the campaigns that plan journey sends."""
STEP_REMOVED = "step removed from the journey"
"""The exit reason of customers whose step a new definition of the journey no longer has."""


class JourneyError(CadenceError):
    """A journey cannot run as defined; the message says what to change."""


@dataclass(frozen=True)
class LiveJourney:
    """A journey as this tick runs it: its stored id, its definition, the end of the window
    the previous tick read (None: never ticked), and its send steps' campaigns."""

    id: int
    definition: JourneyDefinition
    ticked_at: datetime | None
    campaigns: dict[str, Campaign]
    """Send step id -> its stored campaign."""

    @property
    def active(self) -> bool:
        return self.definition.spec.status == "active"


async def sync_journeys(
    session: AsyncSession, program: Program, now: datetime
) -> list[LiveJourney]:
    """Store the program's journeys and their step campaigns as the files define them now.

    A changed definition ends the passes of customers at a step it no longer has.
    Journeys gone from the files are not returned: their customers stay where they are.
    """
    # Definitions are compared by digest: their JSON is neither read nor parsed each tick.
    journeys = select(Journey).options(defer(Journey.definition))
    stored = {row.name: row for row in (await session.execute(journeys)).scalars()}
    names = [
        step_campaign_name(definition.name, step.id)
        for definition in program.journeys
        for step in definition.steps
        if step.spec.send is not None
    ]
    # One read for every journey's step campaigns: the tick syncs them all each time.
    found = await session.execute(
        select(Campaign).options(defer(Campaign.definition)).where(Campaign.name.in_(names))
    )
    step_rows = {row.name: row for row in found.scalars()}
    live = []
    for definition in program.journeys:
        document = definition.spec.model_dump(mode="json")
        digest = definition_digest(document)
        row = stored.get(definition.name)
        if row is None:
            row = Journey(
                name=definition.name,
                definition=document,
                digest=digest,
                ticked_at=None,
                created_at=now,
                updated_at=now,
            )
            session.add(row)
            await session.flush()
        elif row.digest != digest:
            row.definition, row.digest, row.updated_at = document, digest, now
            await _end_removed_steps(session, row.id, definition, now)
        campaigns = _step_campaigns(session, definition, step_rows, now)
        live.append(LiveJourney(row.id, definition, row.ticked_at, campaigns))
    await session.flush()  # new step campaigns get their ids
    return live


async def mark_ticked(session: AsyncSession, journeys: list[LiveJourney], now: datetime) -> None:
    """The next tick reads what happens after ``now``."""
    if journeys:
        await session.execute(
            update(Journey)
            .where(Journey.id.in_([journey.id for journey in journeys]))
            .values(ticked_at=now)
        )


async def _end_removed_steps(
    session: AsyncSession, journey_id: int, definition: JourneyDefinition, now: datetime
) -> None:
    await session.execute(
        update(JourneyState)
        .where(
            JourneyState.journey_id == journey_id,
            JourneyState.wake_at.is_not(None),
            JourneyState.step.not_in([step.id for step in definition.steps]),
        )
        .values(status="exited", wake_at=None, ended_at=now, exit_reason=STEP_REMOVED)
    )


def _step_campaigns(
    session: AsyncSession,
    definition: JourneyDefinition,
    rows: dict[str, Campaign],
    now: datetime,
) -> dict[str, Campaign]:
    """The stored campaign of each send step, created or brought up to date; ``rows`` are
    the stored campaigns by name."""
    sends = [step for step in definition.steps if step.spec.send is not None]
    names = {step_campaign_name(definition.name, step.id): step for step in sends}
    campaigns = {}
    for name, step in names.items():
        columns = _campaign_columns(definition, step, name)
        row = rows.get(name)
        if row is None:
            row = Campaign(
                name=name,
                origin=JOURNEY_ORIGIN,
                schedule_from=now,
                created_at=now,
                updated_at=now,
                **columns,
            )
            session.add(row)
        elif row.origin != JOURNEY_ORIGIN:
            raise JourneyError(
                f"journey `{definition.name}`: step `{step.id}` sends as campaign `{name}`, "
                f"but a {row.origin} campaign has that name; give the step another id"
            )
        elif row.digest != columns["digest"] or row.status != columns["status"]:
            for column, value in columns.items():
                setattr(row, column, value)
            row.updated_at = now
        campaigns[step.id] = row
    return campaigns


def _campaign_columns(
    definition: JourneyDefinition, step: JourneyStep, name: str
) -> dict[str, Any]:
    spec = definition.spec
    document = {
        "name": name,
        "description": f"Step `{step.id}` of journey `{spec.name}`",
        "kind": "journey",
        "journey": spec.name,
        "step": step.id,
        "channel": step.spec.channel or "email",
        "variants": [step.spec.send],
        "priority": spec.priority,
        "category": "marketing",
        "control": spec.control,
    }
    return {
        "kind": "journey",
        "status": spec.status,
        "priority": spec.priority,
        "channel": document["channel"],
        "category": "marketing",
        "definition": document,
        "digest": definition_digest(document),
    }
