"""Operator actions on runs: preview an audience, launch an ad-hoc campaign, run one now.

Each goes through the same planning tick and contact policy as the automated
cycles (:func:`core.planner.tick.plan_tick`); a preview plans inside a
transaction that writes nothing. The console calls these functions too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import ValidationError
from sqlalchemy import select

from core.audit import current_actor, record_action
from core.campaigns import store_campaign
from core.db import Store
from core.db.dialect import serialize_writers
from core.errors import CampaignError
from core.models import Campaign, CampaignRun
from core.planner.runs import PlannedRun, plan_runs, request_for_spec, request_run
from core.planner.tick import RunPlan, plan_tick
from core.program import Program, template_problem
from core.program.model import CampaignSpec
from core.settings import Settings

_UNSTORED = 0
"""The run and campaign id a preview plans under when there is none: no stored row has it."""


def launch_spec(
    *,
    segment: str | None,
    stage: str | None,
    rule: str | None,
    template: str,
    channel: str,
    control: float,
    priority: int,
    name: str | None,
    now: datetime,
) -> CampaignSpec:
    """The ad-hoc campaign a launch describes; raises :class:`CampaignError` on bad input."""
    aim = segment or stage or "audience"
    values = {
        "name": name or f"launch-{aim}-{now:%Y%m%d-%H%M}".lower(),
        "description": f"Launched by {current_actor()} at {now:%Y-%m-%d %H:%M} UTC",
        "kind": "ad_hoc",
        "target": {"segment": segment, "stage": stage, "rule": rule},
        "channel": channel,
        "variants": [template],
        "control": control,
        "priority": priority,
    }
    try:
        return CampaignSpec.model_validate(values)
    except ValidationError as error:
        fields: dict[str, str] = {}
        for problem in error.errors():
            where = ".".join(str(part) for part in problem["loc"]) or "launch"
            said = problem["msg"].removeprefix("Value error, ")
            fields[where] = f"{fields[where]}; {said}" if where in fields else said
        raise LaunchSpecError(fields) from None


class LaunchSpecError(CampaignError):
    """A launch described with bad values: the message names each, and ``fields`` holds
    each problem by its field (``control``, ``name``, ``target.segment``...), so a form
    can show it next to the field."""

    def __init__(self, fields: dict[str, str]) -> None:
        self.fields = fields
        problems = "; ".join(f"{where}: {problem}" for where, problem in fields.items())
        super().__init__(f"cannot launch: {problems}")


async def preview_spec(
    store: Store,
    program: Program,
    settings: Settings,
    spec: CampaignSpec,
    now: datetime,
    campaign_id: int = _UNSTORED,
) -> RunPlan:
    """What a run of ``spec`` would do now, counted by outcome; nothing is written.
    ``campaign_id`` is the stored campaign's, whose contact history the cooldown reads."""
    async with store.reading() as session:
        request = await request_for_spec(session, _UNSTORED, campaign_id, spec, program)
        [plan] = await plan_tick(
            session, [request], settings.policy, settings.zone, now, write=False
        )
        return plan


async def preview_campaign(
    store: Store, program: Program, settings: Settings, name: str, now: datetime
) -> RunPlan:
    """:func:`preview_spec` of a stored campaign, or of one in the program files not yet
    applied."""
    async with store.reading() as session:
        stored = await session.scalar(select(Campaign).where(Campaign.name == name))
    if stored is None:
        return await preview_spec(store, program, settings, _program_spec(program, name), now)
    _refuse_journey_step(stored)
    spec = CampaignSpec.model_validate(stored.definition)
    return await preview_spec(store, program, settings, spec, now, stored.id)


@dataclass(frozen=True)
class Launch:
    """A launched campaign: planned now (``planned``) or waiting for its time."""

    campaign: str
    run_id: int
    due_at: datetime
    planned: PlannedRun | None


async def launch_campaign(
    store: Store,
    program: Program,
    settings: Settings,
    spec: CampaignSpec,
    now: datetime,
    *,
    at: datetime | None = None,
    confirmed: bool = False,
) -> Launch:
    """Store the ad-hoc campaign ``spec`` and run it at ``at`` (now when None or past).

    Refuses, writing nothing, a template the templates folder lacks, an unknown
    or empty audience, a time in the past, and an audience above
    ``policy.launch_confirm_above`` unless ``confirmed``.
    """
    templates = settings.resolve(settings.templates_dir)
    for variant in spec.variants:
        for channel in spec.channel_choices:
            if trouble := template_problem(variant, channel, templates):
                raise CampaignError(f"cannot launch: {trouble}")
    # Only the size is needed to decide: counting the audience spares planning it twice.
    async with store.reading() as session:
        request = await request_for_spec(session, _UNSTORED, _UNSTORED, spec, program)
        size = await request.audience.count(session, now)
    if size == 0:
        raise CampaignError(
            f"cannot launch `{spec.name}`: its audience is empty; check the segment with "
            "`cadence segments show` or loosen the rule"
        )
    limit = settings.policy.launch_confirm_above
    if size > limit and not confirmed:
        raise CampaignError(
            f"`{spec.name}` targets {size:,} customers, more than "
            f"policy.launch_confirm_above ({limit:,}); add --yes to launch it"
        )
    due = now if at is None or at <= now else at
    async with store.transaction() as session:
        await serialize_writers(session, "planner")
        if await session.scalar(select(Campaign.id).where(Campaign.name == spec.name)):
            raise CampaignError(
                f"a campaign named `{spec.name}` exists already; choose another --name"
            )
        campaign = store_campaign(session, spec, origin="launch", now=now)
        await session.flush()
        run_id = await request_run(session, campaign, "launch", "launch", due, current_actor())
        record_action(
            session,
            "campaign.launch",
            spec.name,
            {"due_at": due.isoformat(), "audience": size},
            f"launched {spec.name} for {size:,} customers",
        )
    planned = None
    if due <= now:
        [planned] = await plan_runs(store, program, settings, now, [run_id])
    return Launch(spec.name, run_id, due, planned)


async def run_campaign_now(
    store: Store, program: Program, settings: Settings, name: str, now: datetime
) -> PlannedRun:
    """Run the stored campaign ``name`` now, outside its schedule, through the policy."""
    key = f"manual:{now.isoformat(timespec='seconds')}"
    async with store.transaction() as session:
        campaign = await session.scalar(select(Campaign).where(Campaign.name == name))
        if campaign is None:
            raise CampaignError(
                f"no stored campaign `{name}`; see `cadence campaign list`, or apply the "
                "program with `cadence program apply`"
            )
        _refuse_journey_step(campaign)
        if campaign.status != "active":
            raise CampaignError(
                f"campaign `{name}` is {campaign.status}; `cadence campaign resume {name}` first"
            )
        run_id = await request_run(session, campaign, key, "manual", now, current_actor())
        record_action(session, "campaign.run", name, {"run_key": key}, f"ran {name} now")
    planned = await plan_runs(store, program, settings, now, [run_id])
    if planned:
        return planned[0]
    async with store.reading() as session:
        run = await session.get(CampaignRun, run_id)
    assert run is not None
    raise CampaignError(run.error or f"campaign `{name}` was planned already under {key}")


def _refuse_journey_step(campaign: Campaign) -> None:
    """A journey's send step has no audience of its own: its journey decides who is due."""
    if campaign.kind == "journey":
        raise CampaignError(
            f"`{campaign.name}` is a step of a journey, which sends it to whoever reaches "
            "that step; it cannot be previewed or run on its own"
        )


def _program_spec(program: Program, name: str) -> CampaignSpec:
    for campaign in program.campaigns:
        if campaign.name == name:
            return campaign.spec
    raise CampaignError(
        f"no campaign `{name}` in the database or the program files; see `cadence campaign list`"
    )
