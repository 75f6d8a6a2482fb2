"""Campaign runs with both arms and goal events, written straight to the store, so each
uplift test states exactly who was treated, who was kept back and who converted when."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import count
from typing import Any

from sqlalchemy import insert, select

from core.db import Store
from core.db.bulk import EventRow, store_events
from core.measure.campaign_report import campaign_uplifts
from core.measure.goals import CampaignGoal, measure_goals
from core.measure.uplift import CampaignUplift
from core.message_events import message_event
from core.models import Campaign, CampaignRun, OutboxMessage

_keys = count(1)


async def add_run(
    store: Store,
    campaign_id: int,
    planned_at: datetime,
    arms: Mapping[int, str],
    *,
    status: str = "planned",
    key: str | None = None,
) -> int:
    """A run of ``campaign_id`` planned at ``planned_at`` with an outbox row per customer
    in ``arms`` (customer id -> state: ``sent``, ``control``, ``queued``...); its id."""
    async with store.transaction() as session:
        run = CampaignRun(
            campaign_id=campaign_id,
            run_key=key or f"run-{next(_keys)}",
            occasion="manual",
            status=status,
            due_at=planned_at,
            planned_at=planned_at,
            outcomes={},
        )
        session.add(run)
        await session.flush()
        rows: list[dict[str, Any]] = [
            {
                "run_id": run.id,
                "campaign_id": campaign_id,
                "customer_id": customer,
                "channel": "email",
                "category": "marketing",
                "variant": "offer_a",
                "state": state,
                "due_at": planned_at,
                "created_at": planned_at,
                "sent_at": planned_at if state == "sent" else None,
            }
            for customer, state in arms.items()
        ]
        if rows:
            await session.execute(insert(OutboxMessage), rows)
        return run.id


@dataclass(frozen=True)
class Happening:
    """An event of a customer's: its type, time, value and properties."""

    customer: int
    kind: str
    at: datetime
    value: float | None = None
    properties: Mapping[str, Any] | None = None


async def add_events(store: Store, events: Sequence[Happening], now: datetime) -> None:
    """Store ``events`` as ingest does (one batch)."""
    rows: list[EventRow] = []
    for event in events:
        row = message_event(
            event.customer, event.kind, event.at, event.properties or {}, source="test"
        )
        rows.append((*row[:3], event.value, *row[4:]))
    async with store.transaction() as session:
        await store_events(session, rows, now)


async def measured(store: Store, name: str, as_of: datetime, **params: Any) -> CampaignGoal:
    """Campaign ``name``'s arms as of ``as_of``."""
    async with store.reading() as session:
        campaign = (
            await session.execute(select(Campaign).where(Campaign.name == name))
        ).scalar_one()
        (result,) = await measure_goals(session, [campaign], as_of, params)
    return result


async def measured_all(store: Store, as_of: datetime) -> list[CampaignGoal]:
    """Every stored campaign's arms as of ``as_of``, measured in one call."""
    async with store.reading() as session:
        campaigns = list((await session.execute(select(Campaign).order_by(Campaign.id))).scalars())
        return await measure_goals(session, campaigns, as_of)


async def uplift_of(
    store: Store, name: str, as_of: datetime, min_sample_per_arm: int = 1
) -> CampaignUplift:
    async with store.reading() as session:
        (result,) = await campaign_uplifts(session, as_of, min_sample_per_arm, name=name)
    return result
