"""One journey tick: every journey of the program advanced at ``now``, in one transaction.

The order within a tick:

1. the program's journeys (and their send steps' campaigns) are synced;
2. each active journey enrols whoever its entry saw since its last tick,
   then ends the passes whose exit goal came true;
3. customers move from step to step until nobody more can (waits that ended,
   awaited events or their timeouts, branches, exits), then every send step
   with customers due plans its run through the contact policy and moves them
   on; this repeats for customers that reach another send in the same tick, up
   to :data:`SEND_ROUNDS` times (any left wait at their send for the next tick).

Each stage is a few set-based statements per journey step, never a loop per
customer. A paused journey enrols and moves nobody; its window still moves on,
so nothing that happened while it was paused starts a pass later.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import Store
from core.db.dialect import drop_scratch_table, scratch_table, serialize_writers
from core.journeys.moves import HITS, STATES, Hits, Mover, Moves
from core.journeys.sends import send_due
from core.journeys.store import LiveJourney, mark_ticked, sync_journeys
from core.policy import Outcome
from core.program import Program
from core.settings import Settings

SEND_ROUNDS = 2
"""How many sends one customer may reach in one tick (through steps that do not wait)."""


@dataclass
class JourneyTick:
    """What one tick did, counted over every journey; :meth:`counts` is what a scheduler job
    records."""

    journeys: int = 0
    entered: int = 0
    moved: int = 0
    """Step changes, sends included; passes ending are counted as exited or completed."""
    queued: int = 0
    held: int = 0
    """Planned, but held back by quiet hours until they end."""
    control: int = 0
    excluded: int = 0
    """Refused by the contact policy: caps, consent, suppressions, no address."""
    exited: int = 0
    completed: int = 0

    @property
    def sent(self) -> int:
        """Messages planned to go out: queued now or held by quiet hours."""
        return self.queued + self.held

    def counts(self) -> dict[str, int]:
        return asdict(self)


async def advance_journeys(
    store: Store, program: Program, settings: Settings, now: datetime
) -> JourneyTick:
    """Advance every journey of ``program`` to ``now`` in one transaction."""
    async with store.transaction() as session:
        # One tick at a time; and the contact policy's caps hold only if no planner tick
        # writes the outbox between this tick's counting and its writing.
        await serialize_writers(session, "journeys")
        await serialize_writers(session, "planner")
        journeys = await sync_journeys(session, program, now)
        await scratch_table(session, HITS)
        tick = await _advance(session, journeys, settings, now)
        await drop_scratch_table(session, HITS)
        await mark_ticked(session, journeys, now)
        return tick


async def _advance(
    session: AsyncSession, journeys: list[LiveJourney], settings: Settings, now: datetime
) -> JourneyTick:
    tick = JourneyTick(journeys=len(journeys))
    running = [journey for journey in journeys if journey.active]
    hits = Hits(session)
    movers = {journey.id: Mover(session, journey, now, hits) for journey in running}
    moves = Moves()
    for journey in running:
        mover = movers[journey.id]
        moves.add(await mover.enrol())
        moves.add(await mover.exit_on_goal())
    for round_number in range(SEND_ROUNDS + 1):
        moves.add(await _settle(session, movers, now))
        if round_number == SEND_ROUNDS:
            break
        sent = await send_due(session, movers, running, settings, now, round_number)
        if not sent:
            break
        for step in sent:
            moves.add(step.moves)
            plan = step.plan
            tick.queued += plan.count(Outcome.QUEUED)
            tick.held += plan.count(Outcome.HELD)
            tick.control += plan.count(Outcome.CONTROL)
            tick.excluded += plan.excluded
    tick.entered, tick.moved = moves.entered, moves.moved
    tick.exited, tick.completed = moves.exited, moves.completed
    return tick


async def _settle(session: AsyncSession, movers: dict[int, Mover], now: datetime) -> Moves:
    """Move the customers of every journey through every step but sends until none moves.

    Each pass handles only the steps someone is at and due (a ``wait_until`` also for
    its events), read for all the journeys still moving in one statement; a pass moves
    everyone at least one step on a path, and every loop waits, so the passes end.
    Journeys share no customers' state, so passing them together moves each as passing
    it alone would.
    """
    total = Moves()
    passes = {
        journey_id: len(mover.journey.definition.steps) + 1 for journey_id, mover in movers.items()
    }
    while passes:
        present = await session.execute(
            select(STATES.c.journey_id, STATES.c.step, func.min(STATES.c.wake_at))
            .where(STATES.c.journey_id.in_(sorted(passes)), STATES.c.wake_at.is_not(None))
            .group_by(STATES.c.journey_id, STATES.c.step)
            .order_by(STATES.c.journey_id, STATES.c.step)
        )
        moving = set()
        for journey_id, step_id, earliest in present.all():
            mover = movers[journey_id]
            step = mover.journey.definition.step(step_id)
            if step.kind == "send" or (step.kind != "wait_until" and earliest > now):
                continue
            moved = await mover.settle(step)
            total.add(moved)
            if moved.any:
                moving.add(journey_id)
        passes = {
            journey_id: passes[journey_id] - 1 for journey_id in moving if passes[journey_id] > 1
        }
    return total
