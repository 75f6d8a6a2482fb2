"""One planning tick: every run due together, through the contact policy, into the outbox.

All the runs of a tick are planned in one transaction by a few set-based
statements per run over scratch tables, never a loop per customer:

1. The runs are put in *slot* order: priority (higher first), then campaign
   name, so arbitration is deterministic.
2. ``plan_zones`` holds, per time zone, when marketing due now may go out
   (quiet hours) and the 24-hour and 7-day cap windows around that moment;
   when a run sends at the customers' best hours, ``plan_hours`` holds, per
   zone and local hour, the next time that hour comes (quiet hours again).
3. ``plan_people`` holds, per customer the tick may reach, their due time,
   how many marketing messages the caps allow them (``allowance``) and how
   many are still free in this tick (``remaining``), a status per channel
   of the tick (no address, suppressed, unsubscribed, no consent) and, when
   a run needs them, the due time at their best hour and their preferred
   channel. A message at the best hour counts against the caps as if it
   went now: never more than the caps allow, at times less.
4. Slot by slot, every customer in the run's audience gets exactly one
   :class:`Outcome`: the channel status and cooldown exclude; an eligible
   marketing candidate with no free slot is ``capped`` (the caps were full
   before the tick) or ``lost`` (a higher slot took it); the rest are split
   into control (deterministic hash) and sent (queued, or held by quiet
   hours). A run with a preferred channel gives each customer the channel
   they prefer among its channels if the policy allows it there, else the
   first of its channels that it allows; it excludes only when none does.
   The lost are counted by winner in one grouped read; every other
   outcome gets a row in ``plan_outcomes``. Then one ``UPDATE`` takes a slot
   from each marketing winner. Going down the slots this way is the priority
   arbitration, with no sort of all the candidates.
5. The outcome counts become the runs' figures; planned outcomes become
   outbox rows and update the campaigns' contact history.

A preview runs the same steps without the writes of step 5.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    FromClause,
    Integer,
    MetaData,
    Select,
    String,
    Table,
    and_,
    case,
    false,
    func,
    insert,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from core.clock import stored_zone
from core.db.dialect import backend_of, drop_scratch_table, least, scratch_table, upsert
from core.db.types import BigId, UtcDateTime
from core.intel.send_time import HOURS, next_send_at
from core.models import (
    CampaignContact,
    Customer,
    CustomerChannel,
    CustomerSendTime,
    OutboxMessage,
    Suppression,
)
from core.planner.audience import Audience
from core.planner.control import campaign_salt, control_bucket_sql, control_threshold
from core.policy import Outcome, QuietHours
from core.policy.channels import blocking_status, channel_status
from core.settings import PolicySettings

_DAY = timedelta(days=1)
_WEEK = timedelta(days=7)
_LIVE_STATES = ("queued", "control", "sending", "sent", "retry")
"""Outbox states that count against the caps: everything but a message that failed."""

_CUSTOMERS = Customer.__table__
_SEND_TIMES = CustomerSendTime.__table__
_CHANNELS = CustomerChannel.__table__
_OUTBOX = OutboxMessage.__table__
_CONTACTS = CampaignContact.__table__
_SUPPRESSIONS = Suppression.__table__


@dataclass(frozen=True)
class RunRequest:
    """A run to plan in a tick: which campaign, for whom, and how."""

    run_id: int
    campaign_id: int
    campaign: str
    audience: Audience
    channel: str
    marketing: bool
    priority: int
    variants: tuple[str, ...]
    control_percent: float
    cooldown: timedelta | None
    preferred_channels: tuple[str, ...] = ()
    """When set, each customer's preferred channel among these (see
    :mod:`core.intel.channel_preference`), else the first of these the policy allows for
    them; ``channel`` is then the first of these."""
    best_time: bool = False
    """Marketing goes at each customer's best hour (see :mod:`core.intel.send_time`) within
    the next 24 hours instead of now; customers without one go now."""

    @property
    def choices(self) -> tuple[str, ...]:
        """The channels the run's messages may go on, in fallback order."""
        return self.preferred_channels or (self.channel,)


@dataclass(frozen=True)
class RunPlan:
    """What a tick did with one run's audience: a count per outcome."""

    run_id: int
    campaign: str
    outcomes: dict[Outcome, int]
    lost_to: dict[str, int] = field(default_factory=dict)
    """Customers lost to a higher-priority campaign, by that campaign."""

    @property
    def targeted(self) -> int:
        return sum(self.outcomes.values())

    def count(self, outcome: Outcome) -> int:
        return self.outcomes.get(outcome, 0)

    @property
    def excluded(self) -> int:
        return sum(count for outcome, count in self.outcomes.items() if not outcome.planned)


async def plan_tick(
    session: AsyncSession,
    requests: Sequence[RunRequest],
    policy: PolicySettings,
    zone: ZoneInfo,
    now: datetime,
    *,
    write: bool,
) -> list[RunPlan]:
    """Plan ``requests`` together at ``now``; with ``write``, fill the outbox and the contact
    history. ``zone`` is the program's time zone, for customers without a valid one."""
    if not requests:
        return []
    ordered = sorted(requests, key=lambda request: (-request.priority, request.campaign))
    tables = _scratch_tables(
        tuple(sorted({channel for request in ordered for channel in request.choices}))
    )
    marketing = any(request.marketing for request in ordered)
    best_time = any(request.best_time and request.marketing for request in ordered)
    preferred = any(request.preferred_channels for request in ordered)
    used = tables.used(best_time=best_time)
    for table in used:
        await scratch_table(session, table)
    probes = await _Probes.read(session, ordered, now, marketing=marketing)
    # A tick of many runs reaches most customers: facts for everyone cost one scan,
    # less than deduplicating the audiences. A single run needs its audience only.
    reach = ordered[0].audience.select_customers(now) if len(ordered) == 1 else None
    await _fill_zones(
        session, tables, reach, policy.quiet, zone, now, best_time=best_time, marketing=marketing
    )
    await _fill_people(
        session, tables, reach, policy, now, probes, best_time=best_time, preferred=preferred
    )
    plans = []
    contacted = set(probes.contacted)
    for slot, request in enumerate(ordered):
        plan = await _plan_slot(
            session, tables, slot, request, ordered, request.campaign_id in contacted, now
        )
        plans.append(plan)
        if write:
            await _write(session, tables, slot, request, now)
            if any(plan.count(outcome) for outcome in Outcome if outcome.planned):
                contacted.add(request.campaign_id)  # a later run of it in this tick sees them
    # Dropped now, not at the transaction's end: SQLite keeps them for the connection.
    for table in used:
        await drop_scratch_table(session, table)
    return plans


@cache
def _scratch_tables(channels: tuple[str, ...]) -> _Scratch:
    """The scratch tables of a tick over ``channels`` (sorted), the same objects every tick.

    SQLAlchemy keys its compiled-statement cache on a table's identity: new tables each
    tick made every statement of the tick compile again (about half of a trigger's
    firing), and filled the cache with statements never used again. The programs'
    channel sets are few, so this holds a handful.
    """
    return _Scratch(channels)


class _Scratch:
    """The tick's scratch tables; ``channels`` are the tick's channels, one status each."""

    def __init__(self, channels: Sequence[str]) -> None:
        self.channels = sorted(set(channels))
        metadata = MetaData()

        def table(name: str, *columns: Column[Any], **options: Any) -> Table:
            return Table(name, metadata, *columns, prefixes=["TEMPORARY"], **options)

        self.zones = table(
            "plan_zones",
            Column("time_zone", String(64), primary_key=True),
            Column("due_at", UtcDateTime(), nullable=False),
            Column("day_from", UtcDateTime(), nullable=False),
            Column("day_to", UtcDateTime(), nullable=False),
            Column("week_from", UtcDateTime(), nullable=False),
            Column("week_to", UtcDateTime(), nullable=False),
        )
        # Keyed by a rowid alias on SQLite: audiences come in customer order, so the
        # lookups of a slot walk the table front to back.
        self.people = table(
            "plan_people",
            Column("customer_id", BigId, primary_key=True, autoincrement=False),
            Column("due_at", UtcDateTime(), nullable=False),
            Column("allowance", Integer, nullable=False),
            Column("remaining", Integer, nullable=False),
            Column("first_slot", Integer),
            *(Column(f"status_{index}", Integer, nullable=False) for index in self.status_range),
            # Filled when a run of the tick needs them: the due time at the customer's best
            # hour (and whether quiet hours moved it), their preferred channel's position in
            # ``channels``.
            Column("best_due_at", UtcDateTime()),
            Column("best_held", Boolean),
            Column("preferred", Integer),
        )
        # Every outcome but "lost", keyed (slot, customer) without a rowid on SQLite: each
        # slot's rows are appended in customer order and read back as one range.
        self.outcomes = table(
            "plan_outcomes",
            Column("slot", Integer, primary_key=True, autoincrement=False),
            Column("customer_id", BigInteger, primary_key=True, autoincrement=False),
            Column("outcome", Integer, nullable=False),
            Column("due_at", UtcDateTime(), nullable=False),
            Column("variant", Integer, nullable=False),
            Column("channel", Integer, nullable=False),
            sqlite_with_rowid=False,
        )
        self.hours = table(
            "plan_hours",
            Column("time_zone", String(64), primary_key=True),
            Column("hour", Integer, primary_key=True, autoincrement=False),
            Column("due_at", UtcDateTime(), nullable=False),
            Column("held", Boolean, nullable=False),
        )

    def used(self, *, best_time: bool) -> tuple[Table, ...]:
        """The tables a tick fills: the hours only when a run sends at the best hour (most
        ticks plan one run, and every table costs a create and a drop)."""
        hours = (self.hours,) if best_time else ()
        return (self.zones, *hours, self.people, self.outcomes)

    @property
    def status_range(self) -> range:
        return range(len(self.channels))

    def position(self, channel: str) -> int:
        return self.channels.index(channel)

    def status(self, channel: str) -> Column[int]:
        """The ``plan_people`` column with a customer's status on ``channel``."""
        column: Column[int] = self.people.c[f"status_{self.position(channel)}"]
        return column


_DEFAULT_ZONE_KEY = ""
"""The ``plan_zones`` row for customers without a time zone: the program's."""


@dataclass(frozen=True)
class _Probes:
    """What the tick's statements depend on, asked up front in one statement."""

    recent_marketing: bool
    """Whether a message that counts against the caps could still be in a cap window."""
    suppressions: bool
    contacted: frozenset[int]
    """The tick's campaigns that have a contact history."""

    @classmethod
    async def read(
        cls, session: AsyncSession, ordered: Sequence[RunRequest], now: datetime, *, marketing: bool
    ) -> _Probes:
        outbox, contacts = _OUTBOX.c, _CONTACTS.c
        campaigns = sorted({request.campaign_id for request in ordered})
        # Caps only hold marketing back: a tick of transactional runs need not look.
        in_cap_window = (
            and_(outbox.state.in_(_LIVE_STATES), outbox.due_at > now - _WEEK - _DAY)
            if marketing
            else false()
        )
        recent_marketing, suppressions, *contacted = await _exist(
            session,
            select(outbox.id).where(in_cap_window),
            select(_SUPPRESSIONS.c.id),
            *(select(contacts.customer_id).where(contacts.campaign_id == c) for c in campaigns),
        )
        history = frozenset(c for c, has in zip(campaigns, contacted, strict=True) if has)
        return cls(recent_marketing, suppressions, history)


async def _fill_zones(
    session: AsyncSession,
    tables: _Scratch,
    reach: Select[int] | None,
    quiet: QuietHours | None,
    program_zone: ZoneInfo,
    now: datetime,
    *,
    best_time: bool,
    marketing: bool,
) -> None:
    """Per time zone of the customers within ``reach`` (None: everyone): when their
    marketing may go out, and the cap windows around that moment; with ``best_time``, when
    each local hour comes next. Without ``marketing`` only the program's zone: transactional
    messages go now wherever their customers are, and caps do not hold them."""
    names: Sequence[str] = []
    if marketing:
        query = select(_CUSTOMERS.c.time_zone).distinct().where(_CUSTOMERS.c.time_zone.is_not(None))
        if reach is not None:
            query = query.where(_CUSTOMERS.c.id.in_(reach))
        names = (await session.execute(query)).scalars().all()
    rows, hours = [], []
    for name in [_DEFAULT_ZONE_KEY, *names]:
        zone = stored_zone(name) or program_zone
        due = (quiet.release(now, zone) if quiet else None) or now
        if best_time:
            for hour in range(HOURS):
                at = next_send_at(now, zone, hour)
                release = quiet.release(at, zone) if quiet else None
                hours.append(
                    {
                        "time_zone": name,
                        "hour": hour,
                        "due_at": release or at,
                        "held": bool(release),
                    }
                )
        rows.append(
            {
                "time_zone": name,
                "due_at": due,
                "day_from": due - _DAY,
                "day_to": due + _DAY,
                "week_from": due - _WEEK,
                "week_to": due + _WEEK,
            }
        )
    await session.execute(insert(tables.zones), rows)
    if hours:
        await session.execute(insert(tables.hours), hours)


async def _fill_people(
    session: AsyncSession,
    tables: _Scratch,
    reach: Select[int] | None,
    policy: PolicySettings,
    now: datetime,
    probes: _Probes,
    *,
    best_time: bool,
    preferred: bool,
) -> None:
    """Per customer within ``reach`` (None: everyone): due time, the marketing messages the
    caps allow, and a status per channel; with ``best_time``, the due time at their best
    hour; with ``preferred``, their preferred channel."""
    zones = tables.zones.c
    customers = _CUSTOMERS.c
    zone_key = func.coalesce(customers.time_zone, _DEFAULT_ZONE_KEY)
    source: FromClause = _CUSTOMERS
    if reach is not None:
        reached = reach.subquery("reached")
        source = reached.join(_CUSTOMERS, customers.id == reached.c.customer_id)
    default_zone = select(tables.zones).where(zones.time_zone == _DEFAULT_ZONE_KEY).subquery()
    source = source.outerjoin(tables.zones, zones.time_zone == zone_key).join(default_zone, true())
    extras: dict[str, ColumnElement[Any]] = {}
    if best_time:
        hours = tables.hours.c
        source = source.outerjoin(_SEND_TIMES, _SEND_TIMES.c.customer_id == customers.id)
        source = source.outerjoin(
            tables.hours, and_(hours.time_zone == zone_key, hours.hour == _SEND_TIMES.c.hour)
        )
        extras.update(best_due_at=hours.due_at, best_held=hours.held)
    if preferred:
        chosen = _CHANNELS.c.channel
        source = source.outerjoin(_CHANNELS, _CHANNELS.c.customer_id == customers.id)
        extras["preferred"] = case(
            *((chosen == name, tables.position(name)) for name in tables.channels)
        )

    def zone_value(name: str) -> ColumnElement[datetime]:
        return func.coalesce(zones[name], default_zone.c[name])

    allowance: ColumnElement[int] = literal(min(policy.max_per_day, policy.max_per_week))
    if probes.recent_marketing:
        outbox = _OUTBOX.c

        def used(since: str, until: str) -> ColumnElement[int]:
            return (
                select(func.count())
                .where(
                    outbox.customer_id == customers.id,
                    outbox.category == "marketing",
                    outbox.state.in_(_LIVE_STATES),
                    outbox.due_at > zone_value(since),
                    outbox.due_at < zone_value(until),
                )
                .scalar_subquery()
            )

        allowance = least(
            backend_of(session),
            policy.max_per_day - used("day_from", "day_to"),
            policy.max_per_week - used("week_from", "week_to"),
        )
    statuses = [
        channel_status(name, probes.suppressions).label(f"status_{index}")
        for index, name in enumerate(tables.channels)
    ]
    facts = (
        select(customers.id, zone_value("due_at").label("due_at"), allowance.label("allowance"))
        .add_columns(*statuses, *(value.label(name) for name, value in extras.items()))
        .select_from(source)
        .subquery("facts")
    )
    copied = [*(status.name for status in statuses), *extras]
    await session.execute(
        insert(tables.people).from_select(
            ["customer_id", "due_at", "allowance", "remaining", *copied],
            select(
                facts.c.id,
                facts.c.due_at,
                facts.c.allowance,
                facts.c.allowance,
                *(facts.c[name] for name in copied),
            ),
        )
    )


async def _exist(session: AsyncSession, *queries: Select[Any]) -> tuple[bool, ...]:
    """Whether each query finds a row, in one statement."""
    found = (await session.execute(select(*(query.exists() for query in queries)))).one()
    return tuple(bool(value) for value in found)


async def _plan_slot(
    session: AsyncSession,
    tables: _Scratch,
    slot: int,
    request: RunRequest,
    ordered: Sequence[RunRequest],
    contacted: bool,
    now: datetime,
) -> RunPlan:
    """Give everyone in the run's audience an outcome, counted; then take a slot from each
    winner. ``contacted``: the campaign has a contact history.

    The customers lost to a higher slot, most of a busy tick's candidates, are only
    counted, by winner, in one grouped read; the others get a row in ``plan_outcomes``,
    counted from there. Measured at 1M customers, this beats storing every outcome.
    The first slot loses nobody, and the last takes slots nobody reads.
    """
    people = tables.people.c
    source: FromClause
    customer_id: ColumnElement[Any]
    if len(ordered) == 1:
        # The tick's only run: ``plan_people`` was filled from its audience, which is not
        # read again (a birthday's audience is a scan of every customer).
        source, customer_id = tables.people, people.customer_id
    else:
        audience = request.audience.select_customers(now).subquery("audience")
        source = audience.join(tables.people, people.customer_id == audience.c.customer_id)
        customer_id = audience.c.customer_id
    exclusion, channel = _channel_choice(tables, request)
    times: ColumnElement[int] = literal(0, Integer)
    if contacted:
        contacts = _CONTACTS.c
        source = source.outerjoin(
            _CONTACTS,
            and_(
                contacts.campaign_id == request.campaign_id,
                contacts.customer_id == customer_id,
            ),
        )
        times = func.coalesce(contacts.times, 0)
        if request.cooldown is not None:
            cooled = contacts.last_due_at > literal(now - request.cooldown, UtcDateTime())
            exclusion = case((exclusion != 0, exclusion), (cooled, Outcome.COOLDOWN), else_=0)
    salt, threshold = campaign_salt(request.campaign), control_threshold(request.control_percent)
    in_control = control_bucket_sql(customer_id, salt) < threshold
    plan = RunPlan(request.run_id, request.campaign, {})
    whens: list[tuple[ColumnElement[bool], Any]] = [(exclusion != 0, exclusion)]
    stored: ColumnElement[bool] = true()
    if request.marketing:
        if slot > 0:
            lost = and_(exclusion == 0, people.remaining <= 0, people.allowance > 0)
            by_winner = await session.execute(
                select(people.first_slot, func.count())
                .select_from(source)
                .where(lost)
                .group_by(people.first_slot)
            )
            for winner, count in by_winner:
                plan.lost_to[ordered[winner].campaign] = count
            if plan.lost_to:
                plan.outcomes[Outcome.LOST] = sum(plan.lost_to.values())
            stored = ~lost
        due: ColumnElement[Any] = people.due_at
        held: ColumnElement[bool] = people.due_at > now
        if request.best_time:
            due = func.coalesce(people.best_due_at, people.due_at)
            # At the best hour is queued (for later); held means quiet hours moved it.
            held = or_(people.best_held.is_(True), and_(people.best_due_at.is_(None), held))
        whens += [
            (people.remaining <= 0, Outcome.CAPPED),
            (in_control, Outcome.CONTROL),
            (held, Outcome.HELD),
        ]
    else:
        whens.append((in_control, Outcome.CONTROL))
        due = literal(now, UtcDateTime())
    await session.execute(
        insert(tables.outcomes).from_select(
            ["slot", "customer_id", "outcome", "due_at", "variant", "channel"],
            select(
                literal(slot, Integer),
                customer_id,
                case(*whens, else_=Outcome.QUEUED),
                due,
                times % len(request.variants),
                channel,
            )
            .select_from(source)
            .where(stored),
        )
    )
    outcomes = tables.outcomes.c
    in_slot = outcomes.slot == slot
    # Conditional counts in one pass need no sort.
    counts = (
        await session.execute(
            select(
                *(func.count().filter(outcomes.outcome == outcome) for outcome in Outcome)
            ).where(in_slot)
        )
    ).one()
    plan.outcomes.update({o: n for o, n in zip(Outcome, counts, strict=True) if n})
    if request.marketing and slot < len(ordered) - 1:
        winners = select(outcomes.customer_id).where(in_slot, outcomes.outcome.in_(_PLANNED))
        await session.execute(
            update(tables.people)
            .where(people.customer_id.in_(winners))
            .values(
                remaining=people.remaining - 1,
                first_slot=func.coalesce(people.first_slot, slot),
            )
        )
    return plan


def _channel_choice(
    tables: _Scratch, request: RunRequest
) -> tuple[ColumnElement[int], ColumnElement[int]]:
    """What stops the run's message for a customer (0: nothing), and the position of the
    channel it goes on: the preferred one if the run may use it, else the first of the
    run's channels that the policy allows (the first of all when none does)."""
    people = tables.people.c
    positions = [tables.position(name) for name in request.choices]
    blocked = [
        blocking_status(tables.status(name), marketing=request.marketing)
        for name in request.choices
    ]
    if len(positions) == 1:
        return blocked[0], literal(positions[0], Integer)
    free = [status == 0 for status in blocked]
    channel = case(
        *(
            (and_(people.preferred == position, ok), position)
            for position, ok in zip(positions, free, strict=True)
        ),
        *((ok, position) for position, ok in zip(positions, free, strict=True)),
        else_=positions[0],
    )
    exclusion = case(*((ok, 0) for ok in free), else_=blocked[0])
    return exclusion, channel


_PLANNED = [outcome.value for outcome in Outcome if outcome.planned]


async def _write(
    session: AsyncSession, tables: _Scratch, slot: int, request: RunRequest, now: datetime
) -> None:
    """The slot's planned outcomes as outbox rows, and its campaign's contact history."""
    outcomes = tables.outcomes.c
    planned = select().where(outcomes.slot == slot, outcomes.outcome.in_(_PLANNED))
    variant = case(
        *((outcomes.variant == position, name) for position, name in enumerate(request.variants)),
        else_=request.variants[0],
    )
    state = case((outcomes.outcome == Outcome.CONTROL, "control"), else_="queued")
    channel: ColumnElement[str] = literal(request.channel, String)
    if request.preferred_channels:
        channel = case(
            *((outcomes.channel == tables.position(name), name) for name in request.choices),
            else_=request.channel,
        )
    rows = planned.add_columns(
        literal(request.run_id, BigInteger),
        literal(request.campaign_id, Integer),
        outcomes.customer_id,
        channel,
        literal("marketing" if request.marketing else "transactional", String),
        variant,
        state,
        outcomes.due_at,
        literal(now, UtcDateTime()),
    )
    backend = backend_of(session)
    columns = [
        "run_id",
        "campaign_id",
        "customer_id",
        "channel",
        "category",
        "variant",
        "state",
        "due_at",
        "created_at",
    ]
    await session.execute(
        upsert(backend, _OUTBOX)
        .from_select(columns, rows)
        .on_conflict_do_nothing(index_elements=["run_id", "customer_id"])
    )
    contacts = upsert(backend, _CONTACTS).from_select(
        ["campaign_id", "customer_id", "last_due_at", "times"],
        planned.add_columns(
            literal(request.campaign_id, Integer),
            outcomes.customer_id,
            outcomes.due_at,
            literal(1, Integer),
        ),
    )
    await session.execute(
        contacts.on_conflict_do_update(
            index_elements=["campaign_id", "customer_id"],
            set_={
                "last_due_at": contacts.excluded.last_due_at,
                "times": _CONTACTS.c.times + 1,
            },
        )
    )
