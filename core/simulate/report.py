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

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.lifecycle import stage_overview
from core.measure.goals import measure_goals
from core.models import Campaign
from core.program import Program
from core.simulate.loop import Tallies


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
    session: AsyncSession, program: Program, tallies: Tallies, end: datetime
) -> list[CampaignResult]:
    """Per campaign with at least one planned run: counts, and treated against control
    conversion as :func:`core.measure.goals.measure_goals` judges them at ``end``."""
    campaigns = (await session.scalars(select(Campaign).order_by(Campaign.name))).all()
    results = []
    for measured in await measure_goals(session, campaigns, end, program.params):
        if not measured.runs:
            continue
        treated, control = measured.treated, measured.control
        results.append(
            CampaignResult(
                name=measured.name,
                runs=len(measured.runs),
                sent=measured.sent,
                control=measured.kept_back,
                opened=tallies.opened.get(measured.name, 0),
                clicked=tallies.clicked.get(measured.name, 0),
                goal=measured.goal.event if measured.goal is not None else None,
                treated=treated.members,
                treated_converted=treated.converted,
                control_members=control.members,
                control_converted=control.converted,
            )
        )
    return results


async def stage_sizes(session: AsyncSession, program: Program, now: datetime) -> dict[str, int]:
    """Customers per lifecycle stage, in program order."""
    return {stage.name: stage.customers for stage in await stage_overview(session, program, now)}
