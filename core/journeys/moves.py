"""The set-based statements of a journey tick: enrol, exit on a goal, and move customers on.

Every statement works on all the customers of one journey at one step at
once (``INSERT ... SELECT``, ``UPDATE ... FROM``), never per customer. Times
are logical: a wait that ended at 11:00 moves its customers on as of 11:00,
even when the tick runs at 11:03, so a journey's timing does not depend on
how often it is ticked. Only a send moves on as of the tick's ``now``, when the
message is planned, so a loop of sends and waits sends at most once per round.

Events and entries are read in the window since the journey's previous
tick, reaching :data:`LOOKBACK` further back, ``(ticked_at - LOOKBACK, now]``:
their writers stamp them with the moment they started (a stage refresh, an
event's own time) and commit later, so a tick can end before an entry it
should have seen becomes visible. Every statement is relative to the state
it changes (an entry only for someone not in, or past, the journey; a goal or
an awaited event only after the pass or the step began), so reading a moment
twice moves nobody twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    FromClause,
    MetaData,
    Select,
    Table,
    and_,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.dialect import Backend, backend_of, rowcount
from core.db.moments import shifted
from core.db.sqlfunctions import JsonText, Unindexed
from core.db.types import BigId, UtcDateTime
from core.durations import parse_duration
from core.journeys.store import LiveJourney
from core.models import Base, Event, JourneyState, Segment, SegmentChange, StageTransition
from core.program.journeys import JourneyStep, step_campaign_name
from core.program.model import COMPLETE_TARGET, EXIT_TARGET
from core.rules import join_rule_tables
from core.rules.fields import CUSTOMERS

LOOKBACK = timedelta(hours=1)
"""How long before its previous tick a journey tick reads again: longer than any writer
of entries (a refresh of a million customers) takes to commit."""

ACTIVE, EXITED, COMPLETED = "active", "exited", "completed"
GOAL_REACHED = "goal reached"
"""The exit reason of customers whose journey's exit goal came true."""

STATES: Table = Base.metadata.tables[JourneyState.__tablename__]
_EVENTS = Event.__table__
_s = STATES.c
_INNER = STATES.alias("inner_states")
"""The states again, for subqueries of statements that update the states: an alias is never
correlated with the table being updated."""

HITS = Table(
    "journey_hits",
    MetaData(),
    Column("customer_id", BigId, primary_key=True, autoincrement=False),
    Column("at", UtcDateTime(), nullable=False),
    prefixes=["TEMPORARY"],
)
"""Scratch: per customer, the moment something happened to them (an entry, an event)."""
_h = HITS.c


@dataclass
class Moves:
    """What the statements of a tick did, counted."""

    entered: int = 0
    moved: int = 0
    exited: int = 0
    completed: int = 0

    def add(self, other: Moves) -> None:
        self.entered += other.entered
        self.moved += other.moved
        self.exited += other.exited
        self.completed += other.completed

    @property
    def any(self) -> bool:
        return bool(self.entered or self.moved or self.exited or self.completed)


def at_step(journey: LiveJourney, step: JourneyStep) -> list[ColumnElement[bool]]:
    """The active customers of ``journey`` at ``step`` (due or not)."""
    return [_s.journey_id == journey.id, _s.step == step.id, _s.wake_at.is_not(None)]


def due_at_step(
    journey: LiveJourney, step: JourneyStep, now: datetime
) -> list[ColumnElement[bool]]:
    """The customers at ``step`` whose wait (if it has one) is over at ``now``."""
    return [_s.journey_id == journey.id, _s.step == step.id, _s.wake_at <= moment(now)]


class Hits:
    """The tick's scratch :data:`HITS`, shared by its movers: emptied before a fill only
    when the fill before left rows (most fills of most ticks find nobody, and every
    statement spared is a round trip to the database)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._rows = False
        """Whether the last fill left rows (the table starts empty)."""

    async def fill(self, query: Select[Any]) -> int:
        """Fill the hits with ``query`` alone; how many customers it found (none: the
        statements that would read the hits have nothing to do)."""
        if self._rows:
            await self.session.execute(delete(HITS))
        filled = await self.session.execute(insert(HITS).from_select(["customer_id", "at"], query))
        found = rowcount(filled)
        self._rows = found > 0
        return found


class Mover:
    """Moves the customers of one journey from step to step, within one tick."""

    def __init__(
        self, session: AsyncSession, journey: LiveJourney, now: datetime, hits: Hits
    ) -> None:
        self.session = session
        self.journey = journey
        self.now = now
        self.hits = hits
        self.backend: Backend = backend_of(session)

    # --- entering and leaving -------------------------------------------------------

    async def enrol(self) -> Moves:
        """Start a pass for everyone the entry saw in the window, as of when it saw them:
        new customers, and those the re-entry rules let in again."""
        since = self.journey.ticked_at
        if since is None:
            return Moves()
        if not await self.hits.fill(self._entries(since)):
            return Moves()  # nobody entered: most ticks
        state = self._arrive(self.journey.definition.steps[0], _h.at)
        again = (
            update(STATES)
            .where(_s.journey_id == self.journey.id, _s.customer_id == _h.customer_id)
            .values(
                status=ACTIVE,
                entered_at=_h.at,
                ended_at=None,
                exit_reason=None,
                entries=_s.entries + 1,
                **state,
            )
        )
        entered = rowcount(await self.session.execute(again))
        known = exists().where(_s.journey_id == self.journey.id, _s.customer_id == _h.customer_id)
        values = {
            "journey_id": literal(self.journey.id),
            "customer_id": _h.customer_id,
            "status": literal(ACTIVE),
            "entered_at": _h.at,
            "entries": literal(1),
            **state,
        }
        new = insert(STATES).from_select(list(values), select(*values.values()).where(~known))
        entered += rowcount(await self.session.execute(new))
        return Moves(entered=entered)

    def _entries(self, since: datetime) -> Select[Any]:
        """``(customer_id, at)``: per customer free to enter, the first moment in the window
        its entry saw them. Free: never in the journey, or (with re-entry) past their last
        pass, as long ``after`` its start as re-entry asks, with entries to spare."""
        entry = self.journey.definition.spec.entry
        table: FromClause
        if entry.event is not None:
            table = _EVENTS
            source = table.c
            at, matches = source.occurred_at, Unindexed(source.type) == entry.event
        elif entry.segment is not None:
            table = SegmentChange.__table__
            source = table.c
            segment = select(Segment.id).where(Segment.name == entry.segment).scalar_subquery()
            at, matches = source.at, and_(source.segment_id == segment, source.entered.is_(True))
        else:
            table = StageTransition.__table__
            source = table.c
            at, matches = source.at, source.to_stage == entry.stage
        previous = _INNER.c
        free: ColumnElement[bool] = previous.customer_id.is_(None)
        reentry = self.journey.definition.spec.reentry
        if reentry is not None:
            again = [previous.status != ACTIVE, at > previous.ended_at]
            if reentry.after is not None:
                again.append(
                    at >= shifted(self.backend, previous.entered_at, _duration(reentry.after))
                )
            if reentry.max_entries is not None:
                again.append(previous.entries < reentry.max_entries)
            free = or_(free, and_(*again))
        passes = and_(
            previous.journey_id == self.journey.id, previous.customer_id == source.customer_id
        )
        return (
            select(source.customer_id, func.min(at))
            .select_from(table.outerjoin(_INNER, passes))
            .where(matches, free, *self._window(at, since))
            .group_by(source.customer_id)
        )

    async def exit_on_goal(self) -> Moves:
        """End, as reached, the passes whose exit goal came true: its event after the entry
        (in the window), or its rule now."""
        goal = self.journey.definition.spec.exit_goal
        if goal is None:
            return Moves()
        active = [_s.journey_id == self.journey.id, _s.wake_at.is_not(None)]
        exited = 0
        since = self.journey.ticked_at
        if goal.event is not None and since is not None:
            events = _EVENTS.c
            joined = _EVENTS.join(STATES, and_(_s.customer_id == events.customer_id, *active))
            hits = (
                select(events.customer_id, func.min(events.occurred_at))
                .select_from(joined)
                .where(
                    Unindexed(events.type) == goal.event,
                    events.occurred_at > _s.entered_at,
                    *self._window(events.occurred_at, since),
                )
                .group_by(events.customer_id)
            )
            if await self.hits.fill(hits):
                reached = update(STATES).where(*active, _s.customer_id == _h.customer_id)
                ended = reached.values(**self._end(EXITED, _h.at, GOAL_REACHED))
                exited += rowcount(await self.session.execute(ended))
        rule = self.journey.definition.exit_rule
        if rule is not None:
            matching = (
                select(CUSTOMERS.c.id)
                .select_from(join_rule_tables(CUSTOMERS, rule.tables))
                .where(
                    CUSTOMERS.c.id.in_(
                        select(_INNER.c.customer_id).where(
                            _INNER.c.journey_id == self.journey.id, _INNER.c.wake_at.is_not(None)
                        )
                    ),
                    rule.condition(self.now),
                )
            )
            ended = (
                update(STATES)
                .where(*active, _s.customer_id.in_(matching))
                .values(**self._end(EXITED, moment(self.now), GOAL_REACHED))
            )
            exited += rowcount(await self.session.execute(ended))
        return Moves(exited=exited)

    # --- steps ----------------------------------------------------------------------

    async def settle(self, step: JourneyStep) -> Moves:
        """Move on whoever ``step`` (anything but a send) is done with at ``now``."""
        due = due_at_step(self.journey, step, self.now)
        if step.kind == "wait":
            return await self.move(step, "next", due, _s.wake_at)
        if step.kind == "exit":
            reason = step.spec.exit or step.id
            ended = update(STATES).where(*due).values(**self._end(EXITED, _s.step_since, reason))
            return Moves(exited=rowcount(await self.session.execute(ended)))
        if step.kind == "branch":
            assert step.rule is not None
            rule = step.rule
            matching = (
                select(CUSTOMERS.c.id)
                .select_from(join_rule_tables(CUSTOMERS, rule.tables))
                .where(
                    CUSTOMERS.c.id.in_(
                        select(_INNER.c.customer_id).where(
                            _INNER.c.journey_id == self.journey.id,
                            _INNER.c.step == step.id,
                            _INNER.c.wake_at <= moment(self.now),
                        )
                    ),
                    rule.condition(self.now),
                )
            )
            moves = await self.move(step, "on_true", [*due, _s.customer_id.in_(matching)])
            moves.add(await self.move(step, "on_false", due))
            return moves
        # wait_until: the first awaited event within the timeout, else the timeout.
        moves = Moves()
        since = self.journey.ticked_at
        if since is not None and await self.hits.fill(self._awaited_events(step, since)):
            happened = [*at_step(self.journey, step), _s.customer_id == _h.customer_id]
            moves.add(await self.move(step, "on_event", happened, _h.at))
        moves.add(await self.move(step, "on_timeout", due, _s.wake_at))
        return moves

    def _awaited_events(self, step: JourneyStep, since: datetime) -> Select[Any]:
        """``(customer_id, at)``: the first event a ``wait_until`` step waits for, per
        customer at the step, after they reached it and before its timeout."""
        awaited = step.spec.wait_until
        assert awaited is not None
        events = _EVENTS.c
        joined = _EVENTS.join(
            STATES, and_(_s.customer_id == events.customer_id, *at_step(self.journey, step))
        )
        conditions = [
            Unindexed(events.type) == awaited.event,
            events.occurred_at > _s.step_since,
            events.occurred_at <= _s.wake_at,
            *self._window(events.occurred_at, since),
        ]
        if awaited.of_step is not None:
            campaign = step_campaign_name(self.journey.definition.name, awaited.of_step)
            conditions.append(JsonText(events.properties, "campaign") == campaign)
        return (
            select(events.customer_id, func.min(events.occurred_at))
            .select_from(joined)
            .where(*conditions)
            .group_by(events.customer_id)
        )

    async def move(
        self,
        step: JourneyStep,
        outcome: str,
        where: list[ColumnElement[bool]],
        at: ColumnElement[Any] | datetime | None = None,
    ) -> Moves:
        """Move the customers ``where`` selects at ``step`` along ``outcome``, as of ``at``
        (by default the step's own start: a branch or exit decides at once)."""
        at = _s.step_since if at is None else at
        target = step.leads_to[outcome]
        moving = update(STATES).where(*where)
        ended = moment(at) if isinstance(at, datetime) else at
        if target == EXIT_TARGET:
            values = self._end(EXITED, ended, f"{step.id}: {outcome}")
        elif target == COMPLETE_TARGET:
            values = self._end(COMPLETED, ended, None)
        else:
            values = self._arrive(self.journey.definition.step(target), at)
        moved = rowcount(await self.session.execute(moving.values(**values)))
        if target == EXIT_TARGET:
            return Moves(exited=moved)
        if target == COMPLETE_TARGET:
            return Moves(completed=moved)
        return Moves(moved=moved)

    # --- pieces -----------------------------------------------------------------------

    def _arrive(self, step: JourneyStep, at: ColumnElement[Any] | datetime) -> dict[str, Any]:
        """The columns of a customer reaching ``step`` at ``at`` (a column, or a moment)."""
        since = moment(at) if isinstance(at, datetime) else at
        wake = since if step.delay is None else shifted(self.backend, at, step.delay)
        return {"step": literal(step.id), "step_since": since, "wake_at": wake}

    @staticmethod
    def _end(status: str, at: ColumnElement[Any], reason: str | None) -> dict[str, Any]:
        return {"status": status, "wake_at": None, "ended_at": at, "exit_reason": reason}

    def _window(
        self, column: ColumnElement[datetime], since: datetime
    ) -> list[ColumnElement[bool]]:
        return [column > moment(since - LOOKBACK), column <= moment(self.now)]


def moment(value: datetime) -> ColumnElement[datetime]:
    """``value`` as a bound time parameter."""
    return literal(value, UtcDateTime())


def _duration(text: str) -> timedelta:
    duration = parse_duration(text)
    assert duration is not None  # the spec checked it
    return duration
