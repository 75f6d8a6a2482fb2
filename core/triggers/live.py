"""What firing a trigger shares: the active triggered campaigns, and planning one match."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import CampaignError
from core.models import Campaign
from core.planner.audience import Audience
from core.planner.runs import (
    PlannedRun,
    record_plan,
    requested_run,
    spec_request,
    target_audience,
)
from core.planner.tick import plan_tick
from core.program import Program
from core.program.model import CampaignSpec, TriggerSpec
from core.program.triggers import TriggerRuleError, TriggerRules, trigger_rules
from core.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LiveTrigger:
    """An active triggered campaign as stored, with its trigger's rules compiled."""

    campaign: Campaign
    spec: CampaignSpec
    trigger: TriggerSpec
    rules: TriggerRules


async def live_triggers(session: AsyncSession, program: Program) -> list[LiveTrigger]:
    """The active triggered campaigns, highest priority first (then by name), as applied.

    The store says what runs (a paused campaign fires nothing); the program gives the
    params its rules read. A campaign whose rules no longer compile is skipped, logged.
    """
    rows = await session.execute(
        select(Campaign).where(Campaign.kind == "triggered", Campaign.status == "active")
    )
    live = []
    for campaign in rows.scalars():
        spec = CampaignSpec.model_validate(campaign.definition)
        assert spec.trigger is not None
        try:
            rules = trigger_rules(spec.trigger, program.params)
        except TriggerRuleError as error:
            logger.warning(
                "trigger skipped: its rule does not compile",
                extra={"campaign": campaign.name, "field": error.field, "error": str(error)},
            )
            continue
        live.append(LiveTrigger(campaign, spec, spec.trigger, rules))
    return sorted(live, key=lambda live: (-live.spec.priority, live.spec.name))


@dataclass(frozen=True, eq=False)
class MatchedCustomers(Audience):
    """Exactly the customers a trigger matched: ``matched`` selects their ids as
    ``customer_id``, each once."""

    matched: Select[Any] | None = None

    def __post_init__(self) -> None:
        assert self.matched is not None  # no stage nor segment: the match says who

    def select_customers(self, now: datetime) -> Select[int]:
        assert self.matched is not None
        return self.matched


async def plan_match(
    session: AsyncSession,
    program: Program,
    settings: Settings,
    trigger: LiveTrigger,
    matched: Select[Any],
    run_key: str,
    occasion: str,
    now: datetime,
) -> PlannedRun | None:
    """Plan a run of ``trigger``'s campaign for the ``matched`` customers (narrowed by the
    campaign's target, if it has one); None when the run ``run_key`` was planned before."""
    run = await requested_run(session, trigger.campaign, run_key, occasion, now)
    if run.status != "pending":
        return None
    try:
        target = await target_audience(session, trigger.spec, program)
    except CampaignError as error:
        run.status, run.error, run.planned_at = "failed", str(error), now
        return None
    if target is not None:
        within = target.select_customers(now).subquery("target")
        matched = select(within.c.customer_id).where(within.c.customer_id.in_(matched))
    audience = MatchedCustomers(None, None, None, matched)
    request = spec_request(run.id, trigger.campaign.id, trigger.spec, audience)
    [plan] = await plan_tick(session, [request], settings.policy, settings.zone, now, write=True)
    record_plan(run, plan, now)
    return PlannedRun(plan, run_key, occasion)
