"""``cadence simulate``: the whole program over simulated time, against synthetic
customers whose behaviour includes a known true effect of every campaign.

A fresh store gets deterministic demo customers with their history (see
:mod:`core.demo_data`), the program is applied, and :mod:`core.simulate.loop` moves the
clock through the given days: the scheduler's jobs at their due times, delivery through
file channels, and the customers' opens, clicks, logins and purchases (see
:mod:`core.simulate.behaviour`) stored as events. :mod:`core.simulate.report` reads the
KPIs back from the store. The same seed gives the same report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from core import clock
from core.db import Store
from core.demo_data import load_demo_data
from core.errors import CadenceError
from core.migrations import upgrade
from core.models import Customer
from core.program import load_program
from core.program.apply import apply_program
from core.settings import Settings
from core.simulate.behaviour import Behaviour
from core.simulate.loop import SimulatedWorld
from core.simulate.report import SimulationReport, campaign_results, stage_sizes

DEFAULT_START = datetime(2026, 1, 5, tzinfo=UTC)
"""A Monday: the simulation's first day unless told otherwise (never the wall clock, so a
seed always gives the same run)."""


@dataclass(frozen=True)
class SimulationSpec:
    """What to simulate."""

    customers: int
    days: int
    seed: int
    behaviour: Behaviour = field(default_factory=Behaviour)
    start: datetime = DEFAULT_START
    history_days: int = 120
    """How much demo history the customers bring to the start (so every stage is filled)."""
    refresh_minutes: float = 1440.0
    """Stage and segment refresh interval in simulated time: daily, since a refresh of every
    segment is the costliest job (the scheduler's 15 minutes would dominate the run)."""
    intel_schedule: str = "0 3 * * MON"
    """Scores, CLV and recommendations: weekly, for the same reason."""
    tick: timedelta = timedelta(hours=1)
    """The finest grain of simulated time: no job runs more often (journeys, date triggers
    and the request tick run at most once a tick; opens and purchases keep exact times)."""


async def run_simulation(
    store: Store,
    settings: Settings,
    spec: SimulationSpec,
    output: Path,
    progress: Callable[[datetime], None] | None = None,
) -> SimulationReport:
    """Simulate ``spec`` on ``store`` (empty or new), writing the delivered messages as
    JSON lines under ``output`` (made when the first is sent); the KPIs at the end.
    ``progress`` hears of every simulated moment reached."""
    program = load_program(settings.resolve(settings.program_dir))
    scheduler = settings.scheduler.model_copy(
        update={"refresh_minutes": spec.refresh_minutes, "intel_schedule": spec.intel_schedule}
    )
    settings = settings.model_copy(update={"scheduler": scheduler})
    end = spec.start + timedelta(days=spec.days)
    with clock.using(clock.FixedClock(spec.start)):
        await upgrade(store)
        async with store.reading() as session:
            if await session.scalar(select(func.count()).select_from(Customer)):
                raise CadenceError(
                    "cadence simulate needs an empty database: create a new one "
                    "(e.g. `createdb cadence_sim`) and pass its URL with --database-url"
                )
        await load_demo_data(
            store, settings, customers=spec.customers, days=spec.history_days, seed=spec.seed
        )
        await apply_program(store, program, spec.start)
    world = SimulatedWorld(store, settings, program, spec.behaviour, spec.seed, output, spec.tick)
    await world.run(spec.start, end, progress)
    async with store.reading() as session:
        campaigns = await campaign_results(session, program, world.tallies, end)
        stages = await stage_sizes(session, program, end)
    return SimulationReport(
        customers=spec.customers,
        days=spec.days,
        seed=spec.seed,
        effect=spec.behaviour.effect,
        base_rate=spec.behaviour.base_rate,
        start=spec.start.isoformat(),
        end=end.isoformat(),
        messages_sent=sum(result.sent for result in campaigns),
        events_stored=world.tallies.events,
        campaigns=campaigns,
        stages=stages,
    )
