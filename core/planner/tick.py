"""One planning tick: every run due together, through the contact policy, into the outbox.

All the runs of a tick are planned in one transaction by a few set-based
statements over scratch tables, never a loop per customer:

1. ``plan_runs`` holds each run's campaign facts; its ``slot`` orders the runs
   by priority (higher first), then campaign name, so arbitration is
   deterministic.
2. ``plan_candidates`` gets every run's audience: one ``(customer, slot)`` row
   per targeted customer.
3. ``plan_zones`` holds, per time zone, when marketing due now may go out
   (quiet hours) and the 24-hour and 7-day cap windows around that moment.
4. ``plan_people`` holds, per targeted customer, their due time, how many
   marketing slots the caps leave them, and a status per channel of the tick
   (no address, suppressed, unsubscribed, no consent, fine).
5. ``plan_outcomes`` gives every candidate exactly one :class:`Outcome`: the
   channel status and cooldown exclude; then, per customer in slot order,
   the eligible marketing candidates take the slots the caps leave; winners
   are split into control (deterministic hash) and sent (queued or held).
6. The outcome counts become the runs' figures; planned outcomes become
   outbox rows and update the campaigns' contact history.

A preview runs steps 1-6 without the writes of step 6.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Integer,
    MetaData,
    Select,
    String,
    Table,
    and_,
    case,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    true,
)
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.dialect import backend_of, drop_scratch_table, least, scratch_table, upsert
from core.db.types import UtcDateTime
from core.models import CampaignContact, Customer, OutboxMessage, Suppression
from core.planner.audience import Audience
from core.planner.control import campaign_salt, control_bucket_sql, control_threshold
from core.policy import Outcome, QuietHours
from core.policy.channels import UNSUBSCRIBE_REASONS, channel_rule
from core.settings import PolicySettings

_DAY = timedelta(days=1)
_WEEK = timedelta(days=7)
_LIVE_STATES = ("queued", "control", "sending", "sent", "retry")
"""Outbox states that count against the caps: everything but a message that failed."""

_CUSTOMERS = Customer.__table__
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
    tables = _Scratch([request.channel for request in ordered])
    for table in tables.all:
        await scratch_table(session, table)
    await _fill_runs(session, tables, ordered, now)
    for slot, request in enumerate(ordered):
        audience = request.audience.select_customers(now).subquery("audience")
        await session.execute(
            insert(tables.candidates).from_select(
                ["customer_id", "slot"],
                select(audience.c.customer_id, literal(slot, Integer)),
            )
        )
    await _fill_zones(session, tables, policy.quiet, zone, now)
    await _fill_people(session, tables, policy, now)
    await _fill_outcomes(session, tables, now)
    plans = await _count(session, tables, ordered)
    if write:
        await _write(session, tables, now)
    # Dropped now, not at the transaction's end: SQLite keeps them for the connection.
    for table in tables.all:
        await drop_scratch_table(session, table)
    return plans


class _Scratch:
    """The tick's scratch tables; ``channels`` are the tick's channels, one status each."""

    def __init__(self, channels: Sequence[str]) -> None:
        self.channels = sorted(set(channels))
        metadata = MetaData()

        def table(name: str, *columns: Column[Any], **options: Any) -> Table:
            return Table(name, metadata, *columns, prefixes=["TEMPORARY"], **options)

        self.runs = table(
            "plan_runs",
            Column("slot", Integer, primary_key=True, autoincrement=False),
            Column("run_id", BigInteger, nullable=False),
            Column("campaign_id", Integer, nullable=False),
            Column("channel", Integer, nullable=False),
            Column("marketing", Integer, nullable=False),
            Column("cooldown_from", UtcDateTime()),
            Column("threshold", Integer, nullable=False),
            Column("salt", BigInteger, nullable=False),
            Column("variants", Integer, nullable=False),
        )
        self.variants = table(
            "plan_variants",
            Column("slot", Integer, primary_key=True, autoincrement=False),
            Column("position", Integer, primary_key=True, autoincrement=False),
            Column("name", String(64), nullable=False),
        )
        # Keyed (customer, slot) without a rowid on SQLite: the rows are stored in the
        # order the per-customer ranking reads them, so it needs no sort.
        self.candidates = table(
            "plan_candidates",
            Column("customer_id", BigInteger, primary_key=True, autoincrement=False),
            Column("slot", Integer, primary_key=True, autoincrement=False),
            sqlite_with_rowid=False,
        )
        self.zones = table(
            "plan_zones",
            Column("time_zone", String(64), primary_key=True),
            Column("due_at", UtcDateTime(), nullable=False),
            Column("day_from", UtcDateTime(), nullable=False),
            Column("day_to", UtcDateTime(), nullable=False),
            Column("week_from", UtcDateTime(), nullable=False),
            Column("week_to", UtcDateTime(), nullable=False),
        )
        self.people = table(
            "plan_people",
            Column("customer_id", BigInteger, primary_key=True, autoincrement=False),
            Column("due_at", UtcDateTime(), nullable=False),
            Column("remaining", Integer, nullable=False),
            *(Column(f"status_{index}", Integer, nullable=False) for index in self.status_range),
        )
        self.outcomes = table(
            "plan_outcomes",
            Column("customer_id", BigInteger, primary_key=True, autoincrement=False),
            Column("slot", Integer, primary_key=True, autoincrement=False),
            Column("outcome", Integer, nullable=False),
            Column("lost_to", Integer),
            Column("due_at", UtcDateTime(), nullable=False),
            Column("variant", Integer, nullable=False),
            sqlite_with_rowid=False,
        )
        self.all = (
            self.runs,
            self.variants,
            self.candidates,
            self.zones,
            self.people,
            self.outcomes,
        )

    @property
    def status_range(self) -> range:
        return range(len(self.channels))


async def _fill_runs(
    session: AsyncSession, tables: _Scratch, ordered: Sequence[RunRequest], now: datetime
) -> None:
    runs = [
        {
            "slot": slot,
            "run_id": request.run_id,
            "campaign_id": request.campaign_id,
            "channel": tables.channels.index(request.channel),
            "marketing": int(request.marketing),
            "cooldown_from": None if request.cooldown is None else now - request.cooldown,
            "threshold": control_threshold(request.control_percent),
            "salt": campaign_salt(request.campaign),
            "variants": len(request.variants),
        }
        for slot, request in enumerate(ordered)
    ]
    await session.execute(insert(tables.runs), runs)
    variants = [
        {"slot": slot, "position": position, "name": name}
        for slot, request in enumerate(ordered)
        for position, name in enumerate(request.variants)
    ]
    await session.execute(insert(tables.variants), variants)


_DEFAULT_ZONE_KEY = ""
"""The ``plan_zones`` row for customers without a time zone: the program's."""


async def _fill_zones(
    session: AsyncSession,
    tables: _Scratch,
    quiet: QuietHours | None,
    program_zone: ZoneInfo,
    now: datetime,
) -> None:
    """Per time zone of the targeted customers: when their marketing may go out."""
    names = (
        await session.execute(
            select(_CUSTOMERS.c.time_zone)
            .distinct()
            .where(
                _CUSTOMERS.c.id.in_(select(tables.candidates.c.customer_id)),
                _CUSTOMERS.c.time_zone.is_not(None),
            )
        )
    ).scalars()
    rows = []
    for name in [_DEFAULT_ZONE_KEY, *names]:
        zone = _zone(name) or program_zone
        due = (quiet.release(now, zone) if quiet else None) or now
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


def _zone(name: str) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None  # imports check zones; an odd stored value falls back to the program's


async def _fill_people(
    session: AsyncSession, tables: _Scratch, policy: PolicySettings, now: datetime
) -> None:
    """Per targeted customer: due time, marketing slots left under the caps, channel statuses."""
    zones = tables.zones.c
    customers = _CUSTOMERS.c
    targeted = select(tables.candidates.c.customer_id).distinct().subquery("targeted")
    zone_key = func.coalesce(customers.time_zone, _DEFAULT_ZONE_KEY)
    source = targeted.join(_CUSTOMERS, customers.id == targeted.c.customer_id).outerjoin(
        tables.zones, zones.time_zone == zone_key
    )
    default_zone = select(tables.zones).where(zones.time_zone == _DEFAULT_ZONE_KEY).subquery()
    source = source.join(default_zone, true())

    def zone_value(name: str) -> ColumnElement[datetime]:
        return func.coalesce(zones[name], default_zone.c[name])

    remaining: ColumnElement[int] = literal(min(policy.max_per_day, policy.max_per_week))
    if await _has_recent_marketing(session, now - _WEEK - _DAY):

        def used(since: str, until: str) -> ColumnElement[int]:
            outbox = _OUTBOX.c
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

        remaining = least(
            backend_of(session),
            policy.max_per_day - used("day_from", "day_to"),
            policy.max_per_week - used("week_from", "week_to"),
        )
    has_suppressions = await _any(session, select(_SUPPRESSIONS.c.id))
    statuses = [
        _channel_status(name, has_suppressions).label(f"status_{index}")
        for index, name in enumerate(tables.channels)
    ]
    await session.execute(
        insert(tables.people).from_select(
            ["customer_id", "due_at", "remaining", *(s.name for s in statuses)],
            select(customers.id, zone_value("due_at"), remaining, *statuses).select_from(source),
        )
    )


def _channel_status(channel: str, has_suppressions: bool) -> ColumnElement[int]:
    """Why the customer cannot be sent marketing on ``channel`` (an :class:`Outcome`), or 0."""
    rule = channel_rule(channel)
    whens: list[tuple[ColumnElement[bool], int]] = []
    if rule.address is not None:
        whens.append((or_(rule.address.is_(None), rule.address == ""), Outcome.NO_ADDRESS))
        if has_suppressions and rule.suppression_channel is not None:
            suppressions = _SUPPRESSIONS.c
            reason = (
                select(suppressions.reason)
                .where(
                    suppressions.channel == rule.suppression_channel,
                    suppressions.address == rule.address,
                )
                .scalar_subquery()
            )
            unsubscribed = reason.in_(sorted(UNSUBSCRIBE_REASONS))
            whens.append((and_(reason.is_not(None), ~unsubscribed), Outcome.SUPPRESSED))
            whens.append((unsubscribed, Outcome.UNSUBSCRIBED))
    if rule.consent is not None:
        whens.append((rule.consent.is_not(True), Outcome.NO_CONSENT))
    if not whens:
        return literal(0, Integer)
    return case(*whens, else_=0)


async def _has_recent_marketing(session: AsyncSession, since: datetime) -> bool:
    """Whether any message that counts against the caps could still be in a cap window."""
    outbox = _OUTBOX.c
    recent = select(outbox.id).where(outbox.state.in_(_LIVE_STATES), outbox.due_at > since)
    return await _any(session, recent)


async def _any(session: AsyncSession, query: Select[Any]) -> bool:
    found = await session.execute(query.limit(1))
    return found.first() is not None


async def _fill_outcomes(session: AsyncSession, tables: _Scratch, now: datetime) -> None:
    runs, people, candidates = tables.runs.c, tables.people.c, tables.candidates.c
    contacts = _CONTACTS.c
    status = case(
        *((runs.channel == index, people[f"status_{index}"]) for index in tables.status_range),
        else_=0,
    )
    exclusion = case(
        (status.in_([Outcome.NO_ADDRESS, Outcome.SUPPRESSED]), status),
        (and_(runs.marketing == 1, status != 0), status),
        (contacts.last_due_at > runs.cooldown_from, Outcome.COOLDOWN),
        else_=0,
    )
    scored = (
        select(
            candidates.customer_id,
            candidates.slot,
            runs.marketing,
            runs.threshold,
            runs.salt,
            exclusion.label("exclusion"),
            (func.coalesce(contacts.times, 0) % runs.variants).label("variant"),
            people.due_at,
            people.remaining,
        )
        .select_from(
            tables.candidates.join(tables.runs, runs.slot == candidates.slot)
            .join(tables.people, people.customer_id == candidates.customer_id)
            .outerjoin(
                _CONTACTS,
                and_(
                    contacts.campaign_id == runs.campaign_id,
                    contacts.customer_id == candidates.customer_id,
                ),
            )
        )
        .subquery("scored")
    )
    s = scored.c
    contender = and_(s.exclusion == 0, s.marketing == 1)
    ranked = select(
        s.customer_id,
        s.slot,
        s.marketing,
        s.threshold,
        s.salt,
        s.exclusion,
        s.variant,
        s.due_at,
        s.remaining,
        func.sum(case((contender, 1), else_=0))
        .over(partition_by=s.customer_id, order_by=s.slot, rows=(None, 0))
        .label("rank"),
        func.min(case((contender, s.slot))).over(partition_by=s.customer_id).label("first_slot"),
    ).subquery("ranked")
    r = ranked.c
    in_control = control_bucket_sql(r.customer_id, r.salt) < r.threshold
    marketing = r.marketing == 1
    outcome = case(
        (r.exclusion != 0, r.exclusion),
        (and_(marketing, r.rank > r.remaining, r.remaining <= 0), Outcome.CAPPED),
        (and_(marketing, r.rank > r.remaining), Outcome.LOST),
        (in_control, Outcome.CONTROL),
        (and_(marketing, r.due_at > now), Outcome.HELD),
        else_=Outcome.QUEUED,
    )
    lost = and_(r.exclusion == 0, marketing, r.rank > r.remaining, r.remaining > 0)
    await session.execute(
        insert(tables.outcomes).from_select(
            ["customer_id", "slot", "outcome", "lost_to", "due_at", "variant"],
            select(
                r.customer_id,
                r.slot,
                outcome,
                case((lost, r.first_slot), else_=null()),
                case((marketing, r.due_at), else_=literal(now, UtcDateTime())),
                r.variant,
            ),
        )
    )


async def _count(
    session: AsyncSession, tables: _Scratch, ordered: Sequence[RunRequest]
) -> list[RunPlan]:
    outcomes = tables.outcomes.c
    counted = await session.execute(
        select(outcomes.slot, outcomes.outcome, outcomes.lost_to, func.count()).group_by(
            outcomes.slot, outcomes.outcome, outcomes.lost_to
        )
    )
    plans = [RunPlan(request.run_id, request.campaign, {}) for request in ordered]
    for slot, code, lost_to, count in counted:
        plan = plans[slot]
        outcome = Outcome(code)
        plan.outcomes[outcome] = plan.outcomes.get(outcome, 0) + count
        if lost_to is not None:
            winner = ordered[lost_to].campaign
            plan.lost_to[winner] = plan.lost_to.get(winner, 0) + count
    return plans


async def _write(session: AsyncSession, tables: _Scratch, now: datetime) -> None:
    """The planned outcomes as outbox rows, and the campaigns' contact history."""
    outcomes, runs, variants = tables.outcomes.c, tables.runs.c, tables.variants.c
    planned = [outcome.value for outcome in Outcome if outcome.planned]
    source = tables.outcomes.join(tables.runs, runs.slot == outcomes.slot)
    state = case((outcomes.outcome == Outcome.CONTROL, "control"), else_="queued")
    rows = (
        select(
            runs.run_id,
            runs.campaign_id,
            outcomes.customer_id,
            _channel_name(tables, runs.channel),
            case((runs.marketing == 1, "marketing"), else_="transactional"),
            variants.name,
            state,
            outcomes.due_at,
            literal(now, UtcDateTime()),
        )
        .select_from(
            source.join(
                tables.variants,
                and_(variants.slot == outcomes.slot, variants.position == outcomes.variant),
            )
        )
        .where(outcomes.outcome.in_(planned))
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
        select(runs.campaign_id, outcomes.customer_id, outcomes.due_at, literal(1, Integer))
        .select_from(source)
        .where(outcomes.outcome.in_(planned)),
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


def _channel_name(tables: _Scratch, index: ColumnElement[int]) -> ColumnElement[str]:
    """The channel name of a ``plan_runs.channel`` index."""
    return case(
        *((index == position, name) for position, name in enumerate(tables.channels)),
        else_=null(),
    )
