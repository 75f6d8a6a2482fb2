"""Journey sends through the planner: a run of the step's campaign for exactly the customers
due at the step, under the same contact policy as every other campaign.

Each send step's run goes through :func:`core.planner.tick.plan_tick` on its
own, highest journey priority first, in the tick's transaction: the caps
count the outbox rows the steps before it wrote, and consent, suppressions,
quiet hours and the control group apply as to any campaign. The run records
every outcome with its count (queued, held, control, capped, no consent...).
Whatever the outcome, the customers then move on: a message the policy
refuses is not owed later, as it would come out of its moment.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.journeys.moves import STATES, Mover, Moves, due_at_step
from core.journeys.store import LiveJourney
from core.planner.audience import Audience
from core.planner.runs import record_plan, requested_run
from core.planner.tick import RunPlan, RunRequest, plan_tick
from core.program.journeys import JourneyStep
from core.settings import Settings

OCCASION = "journey"
"""``CampaignRun.occasion`` of a journey step's run."""


@dataclass(frozen=True)
class JourneyStepAudience(Audience):
    """The audience of a send step's run: the customers due at that step now, rather than
    a stage or segment (those fields stay empty)."""

    journey_id: int = 0
    step: str = ""

    def __post_init__(self) -> None:
        """A step, not a stage or segment, says who is in it."""

    def select_customers(self, now: datetime) -> Select[int]:
        states = STATES.c
        return select(states.customer_id.label("customer_id")).where(
            states.journey_id == self.journey_id,
            states.step == self.step,
            states.wake_at <= now,
        )


@dataclass(frozen=True)
class SentStep:
    """One send step's run in a tick: its plan, and how the customers moved on."""

    journey: str
    step: str
    plan: RunPlan
    moves: Moves


async def send_due(
    session: AsyncSession,
    movers: dict[int, Mover],
    journeys: list[LiveJourney],
    settings: Settings,
    now: datetime,
    round_number: int,
) -> list[SentStep]:
    """Plan every send step with customers due at ``now``, and move those customers on."""
    steps = [
        (journey, step)
        for journey in sorted(journeys, key=lambda j: (-j.definition.spec.priority, j.id))
        if journey.active
        for step in journey.definition.steps
        if step.kind == "send"
    ]
    waiting = await _steps_with_customers_due(session, steps, now)
    sent = []
    for journey, step in steps:
        if (journey.id, step.id) not in waiting:
            continue
        due = due_at_step(journey, step, now)
        plan = await _plan_step(session, journey, step, settings, now, round_number)
        moves = await movers[journey.id].move(step, "next", due, now)
        if moves.moved:  # they are due at once where they arrived, later in this round too
            waiting.add((journey.id, step.leads_to["next"]))
        sent.append(SentStep(journey.definition.name, step.id, plan, moves))
    return sent


async def _steps_with_customers_due(
    session: AsyncSession, steps: list[tuple[LiveJourney, JourneyStep]], now: datetime
) -> set[tuple[int, str]]:
    """(journey id, step id) of the ``steps`` with a customer due at ``now``, in one
    statement rather than one a step (most steps of most ticks have nobody due)."""
    if not steps:
        return set()
    states = STATES.c
    found = await session.execute(
        select(states.journey_id, states.step)
        .distinct()
        .where(
            states.journey_id.in_(sorted({journey.id for journey, _ in steps})),
            states.step.in_(sorted({step.id for _, step in steps})),
            states.wake_at <= now,
        )
    )
    return {(journey_id, step_id) for journey_id, step_id in found.all()}


async def _plan_step(
    session: AsyncSession,
    journey: LiveJourney,
    step: JourneyStep,
    settings: Settings,
    now: datetime,
    round_number: int,
) -> RunPlan:
    campaign = journey.campaigns[step.id]
    key = f"journey:{now.isoformat(timespec='microseconds')}:{round_number}"
    run = await requested_run(session, campaign, key, OCCASION, now)
    spec = journey.definition.spec
    request = RunRequest(
        run_id=run.id,
        campaign_id=campaign.id,
        campaign=campaign.name,
        audience=JourneyStepAudience(
            stage=None, segment_id=None, rule=None, journey_id=journey.id, step=step.id
        ),
        channel=campaign.channel,
        marketing=True,
        priority=spec.priority,
        variants=(str(step.spec.send),),
        control_percent=spec.control,
        cooldown=None,
    )
    [plan] = await plan_tick(session, [request], settings.policy, settings.zone, now, write=True)
    record_plan(run, plan, now)
    return plan
