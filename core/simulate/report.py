"""What a simulation ends with: messages, opens and clicks per campaign, treated against
control conversion per campaign, and the stage sizes, read from the store.

A treated customer is one whose message was sent; a control member one kept back. Either
converts when the campaign's goal event follows the run within the goal's window; only
runs whose window closed before the simulation ended count, so both arms are judged on
whole windows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.lifecycle import stage_overview
from core.models import CampaignRun, Event, OutboxMessage
from core.program import Program
from core.simulate.behaviour import any_between
from core.simulate.loop import Tallies, micros


@dataclass(frozen=True)
class CampaignResult:
    """One campaign over the whole simulation."""

    name: str
    runs: int
    sent: int
    control: int
    opened: int
    clicked: int
    goal: str | None
    treated: int
    """Sent messages whose goal window closed before the end."""
    treated_converted: int
    control_members: int
    """Control rows whose goal window closed before the end."""
    control_converted: int

    @property
    def treated_rate(self) -> float | None:
        return self.treated_converted / self.treated if self.treated else None

    @property
    def control_rate(self) -> float | None:
        return self.control_converted / self.control_members if self.control_members else None

    @property
    def uplift(self) -> float | None:
        treated, control = self.treated_rate, self.control_rate
        return None if treated is None or control is None else treated - control


@dataclass(frozen=True)
class SimulationReport:
    """The KPIs a simulation prints."""

    customers: int
    days: int
    seed: int
    effect: float
    base_rate: float
    start: str
    end: str
    messages_sent: int
    events_stored: int
    campaigns: list[CampaignResult]
    stages: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``--format json``, rates included."""
        data = asdict(self)
        for result, row in zip(self.campaigns, data["campaigns"], strict=True):
            row.update(
                treated_rate=result.treated_rate,
                control_rate=result.control_rate,
                uplift=result.uplift,
            )
        return data


async def campaign_results(
    session: AsyncSession,
    goals: dict[int, tuple[str, str | None, int]],
    tallies: Tallies,
    end: datetime,
) -> list[CampaignResult]:
    """Per campaign with at least one run: counts, and treated against control conversion.
    ``goals`` maps campaign ids to (name, goal event, goal window in micros)."""
    outbox = OutboxMessage.__table__.c
    runs = dict(
        (
            await session.execute(
                select(CampaignRun.campaign_id, func.count()).group_by(CampaignRun.campaign_id)
            )
        ).all()
    )
    rows = (
        await session.execute(
            select(outbox.campaign_id, outbox.customer_id, outbox.created_at, outbox.state)
            .where(outbox.state.in_(("sent", "control")))
            .order_by(outbox.id)
        )
    ).all()
    campaign = np.array([row[0] for row in rows], dtype=np.int64)
    customer = np.array([row[1] for row in rows], dtype=np.int64)
    planned = np.array([micros(row[2]) for row in rows], dtype=np.int64)
    treated = np.array([row[3] == "sent" for row in rows], dtype=bool)
    results = []
    names = {campaign_id: name for campaign_id, (name, _, _) in goals.items()}
    for campaign_id in sorted(runs, key=lambda key: names[key]):
        name, goal, window = goals[campaign_id]
        mine = campaign == campaign_id
        whole = mine & (planned + window <= micros(end)) if goal else np.zeros_like(mine)
        converted = np.zeros(len(rows), dtype=bool)
        if goal and whole.any():
            who, at = await _goal_events(session, goal)
            converted[whole] = any_between(
                who, at, customer[whole], planned[whole] + 1, planned[whole] + window
            )
        results.append(
            CampaignResult(
                name=name,
                runs=runs[campaign_id],
                sent=int((mine & treated).sum()),
                control=int((mine & ~treated).sum()),
                opened=tallies.opened.get(name, 0),
                clicked=tallies.clicked.get(name, 0),
                goal=goal,
                treated=int((whole & treated).sum()),
                treated_converted=int((converted & treated).sum()),
                control_members=int((whole & ~treated).sum()),
                control_converted=int((converted & ~treated).sum()),
            )
        )
    return results


async def _goal_events(session: AsyncSession, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Every ``kind`` event as (customer, time) arrays sorted by customer then time."""
    rows = (
        await session.execute(
            select(Event.customer_id, Event.occurred_at)
            .where(Event.type == kind)
            .order_by(Event.customer_id, Event.occurred_at)
        )
    ).all()
    who = np.array([row[0] for row in rows], dtype=np.int64)
    at = np.array([micros(row[1]) for row in rows], dtype=np.int64)
    return who, at


async def stage_sizes(session: AsyncSession, program: Program, now: datetime) -> dict[str, int]:
    """Customers per lifecycle stage, in program order."""
    return {stage.name: stage.customers for stage in await stage_overview(session, program, now)}
