"""A small world for journey tests: a program with the test's journeys, events written
through the real ingest path, a fixed clock per tick, and readers for states and outbox."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from config import DEFAULT_CONFIG_DIR
from core import clock
from core.db import Store
from core.db.bulk import store_events
from core.journeys import JourneyTick, advance_journeys
from core.message_events import message_event
from core.models import Campaign, CampaignRun, Journey, JourneyState, OutboxMessage
from core.program import Program, load_program
from core.settings import Settings


def journey_program(tmp_path: Path, journeys: str | None = None) -> Program:
    """The default program's stages, segments and scores with ``journeys`` as its journeys
    (by default the shipped ones), and no campaigns: journey tests tick journeys only."""
    folder = tmp_path / "program"
    shutil.copytree(DEFAULT_CONFIG_DIR / "program", folder, dirs_exist_ok=True)
    for other in [*folder.glob("campaigns*.toml"), *folder.glob("journeys*.toml")]:
        other.unlink()
    shipped = (DEFAULT_CONFIG_DIR / "program" / "journeys.toml").read_text(encoding="utf-8")
    (folder / "journeys.toml").write_text(journeys or shipped, encoding="utf-8")
    return load_program(folder, DEFAULT_CONFIG_DIR / "templates")


@dataclass
class World:
    """The store, program and settings a test ticks."""

    store: Store
    program: Program
    settings: Settings

    async def event(self, customer_id: int, kind: str, at: datetime, **properties: Any) -> None:
        async with self.store.transaction() as session:
            row = message_event(customer_id, kind, at, properties, source="test")
            await store_events(session, [row], at)

    async def tick(self, at: datetime) -> JourneyTick:
        with clock.using(clock.FixedClock(at)):
            return await advance_journeys(self.store, self.program, self.settings, clock.now())

    async def states(self, journey: str) -> dict[int, tuple[str, str, str | None, int]]:
        """customer -> (step, status, exit reason, entries)."""
        async with self.store.reading() as session:
            rows = await session.execute(
                select(
                    JourneyState.customer_id,
                    JourneyState.step,
                    JourneyState.status,
                    JourneyState.exit_reason,
                    JourneyState.entries,
                )
                .join(Journey, Journey.id == JourneyState.journey_id)
                .where(Journey.name == journey)
            )
            return {row[0]: tuple(row[1:]) for row in rows}  # type: ignore[misc]

    async def outbox(self, campaign: str) -> dict[int, str]:
        """customer -> outbox state, of ``campaign``'s messages."""
        async with self.store.reading() as session:
            rows = await session.execute(
                select(OutboxMessage.customer_id, OutboxMessage.state)
                .join(Campaign, Campaign.id == OutboxMessage.campaign_id)
                .where(Campaign.name == campaign)
            )
            return {customer: state for customer, state in rows}

    async def runs(self, campaign: str) -> list[CampaignRun]:
        async with self.store.reading() as session:
            rows = await session.execute(
                select(CampaignRun)
                .join(Campaign, Campaign.id == CampaignRun.campaign_id)
                .where(Campaign.name == campaign)
                .order_by(CampaignRun.id)
            )
            return list(rows.scalars())
