"""The simulation's run over simulated time: the leader's jobs at their due times, delivery
through the file channel, and the customers' answers written back as events.

Time moves from one moment something is due to the next (a job's fire time, a held
message's release), not second by second: at each moment the events dated up to it are
stored through the ordinary bulk path (so rollups stay right), the due jobs run (the
same work functions the scheduler's jobs call), every due run is planned, the due
messages are delivered and the customers answer them.

Delivery goes through a real :class:`~core.delivery.DeliveryWorker` whose every channel
is a JSON-lines :class:`~channels.file.FileChannel` (one file per channel): the outbox
keeps the program's channels (so consent, suppressions and templates are the real
ones), and nothing leaves the machine.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from channels.base import Channel
from channels.file import FileChannel
from core import clock
from core.db import Store
from core.db.bulk import EventRow, store_events
from core.db.types import EPOCH, epoch_micros
from core.delivery import DeliveryWorker
from core.durations import parse_duration
from core.message_events import message_event
from core.models import Campaign, CampaignRun, Customer, OutboxMessage
from core.program import Program
from core.scheduler.jobs import CONSOLE_FIGURE_JOBS, REQUESTS_JOB, Job, JobCatalogue
from core.settings import Settings
from core.simulate.behaviour import (
    Behaviour,
    Events,
    FloatArray,
    IntArray,
    Population,
    Responder,
    Sent,
    background_events,
    make_population,
)
from core.templates import Templates
from core.triggers import EventWindow, fire_event_triggers_in

SOURCE = "simulation"
_MICROSECOND = timedelta(microseconds=1)


@dataclass
class Tallies:
    """What the customers did, per campaign name: opens and clicks stored."""

    opened: dict[str, int] = field(default_factory=dict)
    clicked: dict[str, int] = field(default_factory=dict)
    events: int = 0
    """Events the simulation stored."""


def micros(moment: datetime) -> int:
    return epoch_micros(moment.astimezone(UTC).replace(tzinfo=None))


def moment(at: int) -> datetime:
    return (EPOCH + at * _MICROSECOND).replace(tzinfo=UTC)


class SimulatedWorld:
    """A store with its customers, the program's jobs and the customers' behaviour."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        program: Program,
        behaviour: Behaviour,
        seed: int,
        output: Path,
        tick: timedelta,
    ) -> None:
        self.store = store
        self.settings = settings
        self.program = program
        self.behaviour = behaviour
        self.seed = seed
        self.output = output
        self.tick = tick
        """A job runs at most this often in simulated time: the scheduler's per-second and
        quarter-hourly jobs would make every simulated day cost a hundred steps or more."""
        self.catalogue = JobCatalogue(store, settings, program)
        self.tallies = Tallies()
        self._templates = Templates(settings.resolve(settings.templates_dir), settings.templates)
        self._pending: list[Events] = []
        self.campaigns: dict[int, tuple[str, str | None, int]] = {}
        """Campaign id -> name, goal event, goal window (micros)."""
        self._outbox_campaigns: dict[int, str] = {}
        """Outbox id -> campaign name, for the messages sent so far."""
        self._people: Population | None = None
        self._stored_until = EPOCH.replace(tzinfo=UTC)
        """Simulated events dated up to this moment are stored and their triggers fired."""
        self._responder: Responder | None = None
        self._workers: dict[tuple[str, ...], DeliveryWorker] = {}
        """Delivery workers by the channels they serve (see :meth:`_worker`)."""
        self._delivery_rng = random.Random(seed)

    async def run(
        self, start: datetime, end: datetime, progress: Callable[[datetime], None] | None = None
    ) -> None:
        """Simulate from ``start`` to ``end`` on a clock of its own; ``progress`` hears of
        every simulated moment reached."""
        sim_clock = clock.FixedClock(start)
        with clock.using(sim_clock):
            population = self._people = await self._population()
            background = background_events(population, micros(start), micros(end), self.seed)
            self._responder = Responder(population, self.behaviour, background, self.seed)
            self._pending.append(_timeline(background))
            self._stored_until = start  # the history before it fires nothing, as imported
            await self.catalogue.intel()
            await self.catalogue.refresh()
            # The console's figures are stored once, at the end: no simulated customer
            # sees them, and measuring every campaign's uplift each simulated hour cost
            # a fifth of a run.
            jobs = [
                job
                for job in await self.catalogue.jobs()
                if job.name != REQUESTS_JOB and job.name not in CONSOLE_FIGURE_JOBS
            ]
            fires = {
                job.name: _next_fire(job, start, start + _MICROSECOND, self.tick) for job in jobs
            }
            now = start
            while True:
                release = await self._step(jobs, fires, start, now)
                if progress is not None:
                    progress(now)
                if now >= end:
                    break
                upcoming = [fire for fire in fires.values() if fire is not None]
                upcoming += [end, *release]
                now = min(upcoming)
                sim_clock.set(now)
                await self._store_events_until(now)
            await self.catalogue.refresh()
            await self.catalogue.uplifts()
            await self.catalogue.message_counts()
            await self.learn_campaigns()

    @property
    def people(self) -> Population:
        assert self._people is not None, "run() reads the customers first"
        return self._people

    async def _step(
        self, jobs: list[Job], fires: dict[str, datetime | None], start: datetime, now: datetime
    ) -> list[datetime]:
        """Run what is due at ``now`` and deliver; when the next held message is released."""
        cycle_due = False
        for job in jobs:
            fire = fires[job.name]
            if fire is None or fire > now:
                continue
            fires[job.name] = _next_fire(job, start, now + self.tick, self.tick)
            # Cycle jobs only plan, which comes once the other due jobs ran.
            if job.work == self.catalogue.plan:
                cycle_due = True
            else:
                await job.work()
        # The request tick's work, when there is any: a cycle slot, or a pending run.
        due = await self._due(now)
        if cycle_due or due.pending_run:
            await self.catalogue.plan()
            due = await self._due(now)
        return await self._deliver(now, due)

    async def _due(self, now: datetime) -> _Due:
        """What the step has to do after its jobs, read at once (each read costs a round
        trip or two to the database, and a step runs every simulated hour)."""
        async with self.store.reading() as session:
            pending = await session.scalar(
                select(CampaignRun.id)
                .where(CampaignRun.status == "pending", CampaignRun.due_at <= now)
                .limit(1)
            )
            waiting = await session.scalars(
                select(OutboxMessage.channel)
                .distinct()
                .where(OutboxMessage.state == "queued", OutboxMessage.due_at <= now)
            )
            channels = tuple(sorted(waiting))
            release = await _next_release(session, now)
        return _Due(pending is not None, channels, release)

    async def _population(self) -> Population:
        """The store's customers with their simulated behaviour (personas from the demo
        data's attributes)."""
        async with self.store.reading() as session:
            rows = (
                await session.execute(
                    select(Customer.id, Customer.time_zone, Customer.attributes).order_by(
                        Customer.id
                    )
                )
            ).all()
        program_zone = self.settings.time_zone
        return make_population(
            [row[0] for row in rows],
            [row[1] or program_zone for row in rows],
            [str((row[2] or {}).get("persona", "")) for row in rows],
            self.behaviour,
            self.seed,
        )

    async def learn_campaigns(self) -> None:
        """Name, goal event and goal window (micros) of every campaign in the store."""
        async with self.store.reading() as session:
            rows = await session.execute(select(Campaign.id, Campaign.name, Campaign.definition))
        for campaign_id, name, definition in rows.all():
            goal = definition.get("goal") or {}
            # Goals are validated with the program, so a stored one parses.
            within = parse_duration(goal["within"]) if goal else None
            window = within // _MICROSECOND if within else 0
            self.campaigns[campaign_id] = (name, goal.get("event"), window)

    async def _deliver(self, now: datetime, due: _Due) -> list[datetime]:
        """Send what is due through the file channels, then draw the customers' answers;
        when the next message held for later becomes due, if any."""
        release = due.release
        if due.channels:
            # Each step retries as if its worker were new (the file channels hardly retry).
            self._delivery_rng.seed(self.seed)
            await self._worker(due.channels).run(until_idle=True)
            async with self.store.reading() as session:
                await self._respond(session, now, due.channels)
                release = await _next_release(session, now)
        return [release] if release is not None else []

    def _worker(self, names: tuple[str, ...]) -> DeliveryWorker:
        """The delivery worker for these channels, made once: a worker set up anew each
        step (its renderer, signing key and connections) cost more than most steps send."""
        worker = self._workers.get(names)
        if worker is None:
            channels: dict[str, Channel] = {
                name: FileChannel(
                    self.output / f"messages-{name}.jsonl", "jsonl", self.settings.channels.email
                )
                for name in names
            }
            worker = self._workers[names] = DeliveryWorker(
                self.store,
                self.settings,
                channels,
                self._templates,
                owner=SOURCE,
                rng=self._delivery_rng,
            )
        return worker

    async def _respond(
        self, session: AsyncSession, now: datetime, channels: tuple[str, ...]
    ) -> None:
        """The customers' answers to the messages just sent over ``channels``, pending until
        stored."""
        outbox = OutboxMessage.__table__.c
        rows = (
            await session.execute(
                select(outbox.id, outbox.customer_id, outbox.campaign_id, outbox.created_at)
                # By channel, the (channel, sent_at) index finds the step's sends alone:
                # "sent" alone would read every message ever sent (90 days of 20,000
                # customers: 13 ms a step, the simulation's costliest read).
                .where(outbox.channel.in_(channels), outbox.state == "sent", outbox.sent_at >= now)
                .order_by(outbox.id)
            )
        ).all()
        if not rows:
            return
        if any(row[2] not in self.campaigns for row in rows):
            await self.learn_campaigns()
        campaigns = [self.campaigns[row[2]] for row in rows]
        sent = Sent(
            outbox_id=np.array([row[0] for row in rows], dtype=np.int64),
            who=self.people.positions(np.array([row[1] for row in rows], dtype=np.int64)),
            planned_at=np.array([micros(row[3]) for row in rows], dtype=np.int64),
            sent_at=micros(now),
            goal=[goal for _, goal, _ in campaigns],
            window=np.array([window for _, _, window in campaigns], dtype=np.int64),
        )
        self._outbox_campaigns.update(
            (row[0], name) for row, (name, _, _) in zip(rows, campaigns, strict=True)
        )
        assert self._responder is not None, "run() sets the responder up"
        self._pending.append(self._responder.respond(sent, self._utc_offsets(now)))

    def _utc_offsets(self, now: datetime) -> IntArray:
        return np.array(
            [
                int((ZoneInfo(name).utcoffset(now) or timedelta()).total_seconds() // 60)
                for name in self.people.zones
            ],
            dtype=np.int64,
        )

    async def _store_events_until(self, now: datetime) -> None:
        """Store every pending event dated up to ``now`` (and keep the rest pending) and fire
        the event triggers they match in the same transaction, as ingest does."""
        rows: list[EventRow] = []
        still: list[Events] = []
        for events in self._pending:
            due, later = events.split(micros(now))
            rows += self._rows(due)
            if len(later):
                still.append(later)
        self._pending = still
        batch = self.settings.imports.batch_size
        window = EventWindow(self._stored_until, now)
        for first in range(0, len(rows), batch):
            async with self.store.transaction() as session:
                await store_events(session, rows[first : first + batch], now)
                if first + batch >= len(rows):  # the last batch fires them all with it
                    await fire_event_triggers_in(session, self.program, self.settings, window, now)
        self.tallies.events += len(rows)
        self._stored_until = now

    def _rows(self, events: Events) -> list[EventRow]:
        """``events`` as rows for :func:`~core.db.bulk.store_events`, opens and clicks
        counted by campaign."""
        rows: list[EventRow] = []
        tallies = self.tallies
        customers = self.people.ids[events.who].tolist()
        columns = (events.kind.tolist(), events.at.tolist(), events.value.tolist())
        for customer, kind, at, value, outbox_id in zip(
            customers, *columns, events.outbox_id.tolist(), strict=True
        ):
            properties: dict[str, object] = {}
            if outbox_id >= 0:
                campaign = self._outbox_campaigns[outbox_id]
                properties = {"outbox_id": outbox_id, "campaign": campaign}
                counts = tallies.opened if kind == "message_opened" else tallies.clicked
                counts[campaign] = counts.get(campaign, 0) + 1
            row = message_event(customer, kind, moment(at), properties, source=SOURCE)
            # message_event rows carry no value; a purchase does.
            rows.append(row if math.isnan(value) else (*row[:3], value, *row[4:]))
        return rows


@dataclass(frozen=True)
class _Due:
    """What a step found due once its jobs ran."""

    pending_run: bool
    """A requested run (a launch, "run now") waits to be planned."""
    channels: tuple[str, ...]
    """The channels with queued messages due."""
    release: datetime | None
    """When the next message held for later becomes due."""


async def _next_release(session: AsyncSession, now: datetime) -> datetime | None:
    """When the next message held for later becomes due, if any."""
    due: datetime | None = await session.scalar(
        select(func.min(OutboxMessage.due_at)).where(
            OutboxMessage.state.in_(("queued", "retry")), OutboxMessage.due_at > now
        )
    )
    return due


def _timeline(background: dict[str, tuple[IntArray, IntArray, FloatArray]]) -> Events:
    """Every background event in one :class:`Events`, in time order."""
    kinds = sorted(background)
    return Events.sorted(
        np.concatenate([background[kind][0] for kind in kinds]),
        np.concatenate([np.full(len(background[kind][0]), kind) for kind in kinds]),
        np.concatenate([background[kind][1] for kind in kinds]),
        np.concatenate([background[kind][2] for kind in kinds]),
        np.concatenate([np.full(len(background[kind][0]), -1, dtype=np.int64) for kind in kinds]),
    )


def _next_fire(job: Job, start: datetime, earliest: datetime, tick: timedelta) -> datetime | None:
    """The job's first fire time at or after ``earliest``; interval jobs count from
    ``start`` (the scheduler counts from when it started), at least ``tick`` apart.

    A cron job that fires more often than once a tick (the quarter-hourly date triggers)
    runs on the tick's grid from ``start``, where the interval jobs run: off the grid it
    would add a step of its own each tick, and every step stores events, fires their
    triggers and delivers (at 20,000 customers and hourly ticks, twice the steps cost
    about 40% of the run)."""
    trigger = job.trigger
    if isinstance(trigger, IntervalTrigger):
        every = max(timedelta(seconds=trigger.interval_length), tick)
        return _on_grid(start, earliest, every)
    fire: datetime | None = trigger.get_next_fire_time(None, earliest)
    if fire is None:
        return None
    following: datetime | None = trigger.get_next_fire_time(fire, fire + _MICROSECOND)
    if following is not None and following - fire < tick:
        return _on_grid(start, fire, tick)
    return fire.astimezone(UTC)


def _on_grid(start: datetime, earliest: datetime, every: timedelta) -> datetime:
    """The first of ``start``, ``start + every``, ... at or after ``earliest``."""
    return start + -((start - earliest) // every) * every
