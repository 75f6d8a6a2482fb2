"""Event triggers: the events of a batch (or a time window) matched against every active
event trigger, one statement per trigger, each match planned as one run.

A run's key derives from the events it matched (the first id and a digest of all
of them), so firing the same events again finds the run planned and sends
nothing new. Ingest fires only the events it stored, so a batch delivered twice
fires once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from hashlib import blake2b
from typing import Any

from sqlalchemy import ColumnElement, FromClause, Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.util import ClauseAdapter

from core.db import Store
from core.db.dialect import serialize_writers
from core.db.sqlfunctions import Unindexed
from core.models import Event
from core.planner.runs import PlannedRun
from core.program import Program
from core.rules import EVENT_SOURCE, join_rule_tables
from core.rules.fields import CUSTOMERS
from core.settings import Settings
from core.triggers.live import LiveTrigger, live_triggers, plan_match

OCCASION = "trigger"
"""``CampaignRun.occasion`` of a run an event trigger planned."""

_FIRED = Event.__table__.alias("fired")
"""The events being fired, aliased: a customer rule's ``has_event`` reads ``events`` itself."""


@dataclass(frozen=True)
class EventWindow:
    """The events that occurred in ``(start, end]``."""

    start: datetime
    end: datetime


Selection = Sequence[int] | EventWindow
"""Which events to fire: their ids, or a time window."""


@dataclass(frozen=True)
class TriggeredRun(PlannedRun):
    """A run an event trigger planned, and the events it matched (ingest tells each
    sender of a shared transaction the runs its own events caused)."""

    event_ids: frozenset[int]


async def fire_event_triggers(
    store: Store, program: Program, settings: Settings, events: Selection, now: datetime
) -> list[TriggeredRun]:
    """Fire the active event triggers for ``events`` in one transaction; the runs planned."""
    async with store.transaction() as session:
        return await fire_event_triggers_in(session, program, settings, events, now)


async def fire_event_triggers_in(
    session: AsyncSession, program: Program, settings: Settings, events: Selection, now: datetime
) -> list[TriggeredRun]:
    """:func:`fire_event_triggers` inside ``session``'s transaction (ingest stores the
    events and fires them in one)."""
    if not isinstance(events, EventWindow) and not events:
        return []
    chosen = _chosen(events)
    types = set((await session.execute(select(_FIRED.c.type).distinct().where(chosen))).scalars())
    triggers = [
        trigger
        for trigger in await live_triggers(session, program)
        if trigger.trigger.event in types
    ]
    if not triggers:
        return []
    await serialize_writers(session, "planner")
    planned = []
    for trigger in triggers:
        matches = (await session.execute(_matching(trigger, chosen, now))).all()
        if not matches:
            continue
        event_ids = [row[0] for row in matches]
        customers = sorted({row[1] for row in matches})
        audience = select(CUSTOMERS.c.id.label("customer_id")).where(CUSTOMERS.c.id.in_(customers))
        run = await plan_match(
            session, program, settings, trigger, audience, run_key(event_ids), OCCASION, now
        )
        if run is not None:
            planned.append(TriggeredRun(run.plan, run.run_key, run.occasion, frozenset(event_ids)))
    return planned


def run_key(event_ids: Sequence[int]) -> str:
    """The key of the run that fires these events: the same events, the same key."""
    ordered = sorted(event_ids)
    digest = blake2b(",".join(map(str, ordered)).encode(), digest_size=8).hexdigest()
    return f"event:{ordered[0]}:{digest}"


def _chosen(events: Selection) -> ColumnElement[bool]:
    if isinstance(events, EventWindow):
        return (_FIRED.c.occurred_at > events.start) & (_FIRED.c.occurred_at <= events.end)
    return _FIRED.c.id.in_(sorted(set(events)))


def _matching(trigger: LiveTrigger, chosen: ColumnElement[bool], now: datetime) -> Select[Any]:
    """(event id, customer id) of the chosen events ``trigger`` matches: its event type, its
    rule on the event, its rule on the customer."""
    rules = trigger.rules
    source: FromClause = _FIRED.join(CUSTOMERS, CUSTOMERS.c.id == _FIRED.c.customer_id)
    conditions = [chosen, Unindexed(_FIRED.c.type) == trigger.trigger.event]
    if rules.event_rule is not None:
        on_event = rules.event_rule.condition(now, EVENT_SOURCE)
        conditions.append(ClauseAdapter(_FIRED).traverse(on_event))
    if rules.customer_rule is not None:
        source = join_rule_tables(source, rules.customer_rule.tables)
        conditions.append(rules.customer_rule.condition(now))
    return select(_FIRED.c.id, _FIRED.c.customer_id).select_from(source).where(*conditions)
