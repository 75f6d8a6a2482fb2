"""Send-time optimisation: each customer's best local hour of the day to be sent marketing.

The model is a Dirichlet-multinomial over the 24 local hours. A customer's
opens and clicks of the last :data:`HISTORY_DAYS` days are counted by the hour
they happened on the customer's own wall clock (their time zone, the
program's when they have none, daylight saving included). The population's
distribution ``p`` is the average of every such customer's own shares, so a
heavy opener counts as one customer, not as thousands of opens. The prior is
``Dirichlet(k * p)`` with ``k =`` :data:`PRIOR_WEIGHT`, so the posterior
counts are ``n_h + k * p_h`` and the best hour is their largest (ties go to
the hour the population prefers, then the earlier one). With ``k = 10`` a
customer's one or two opens at an unusual hour do not outweigh the
population's favourite (``10 * p_max`` is 1.5 when that hour holds 15% of
opens), while a handful of opens at one hour do. A customer with no history
gets the population's favourite hour.

Everything is set-based: one grouped pass over the window's events, joined to
the zones' UTC-offset periods, a 24-row prior, and one INSERT ... SELECT with a
window function picking every customer's best hour.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    delete,
    func,
    insert,
    literal,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

from core import event_types
from core.clock import stored_zone
from core.db.dialect import (
    backend_of,
    drop_scratch_table,
    epoch_seconds,
    rowcount,
    scratch_table,
    serialize_writers,
)
from core.db.sqlfunctions import Likely
from core.db.types import UtcDateTime
from core.models import Customer, CustomerSendTime, Event

HISTORY_DAYS = 180
"""Opens and clicks older than this are left out: habits change."""
PRIOR_WEIGHT = 10.0
"""``k``: how many of the customer's own opens the population's distribution is worth."""
RESPONSES = (event_types.MESSAGE_OPENED, event_types.MESSAGE_CLICKED)
"""What shows when a customer reads: every open and every click counts once."""
HOURS = 24
_NO_ZONE = ""
"""The offsets' key for customers without a time zone."""
_DAY = timedelta(days=1)
_MINUTE = timedelta(minutes=1)

_metadata = MetaData()
_offsets = Table(
    "send_time_offsets",
    _metadata,
    Column("time_zone", String(64), primary_key=True),
    Column("starts_at", UtcDateTime(), primary_key=True),
    Column("ends_at", UtcDateTime(), nullable=False),
    Column("offset_seconds", Integer, nullable=False),
    prefixes=["TEMPORARY"],
)
_counts = Table(
    "send_time_counts",
    _metadata,
    Column("customer_id", BigInteger, primary_key=True, autoincrement=False),
    Column("hour", Integer, primary_key=True, autoincrement=False),
    Column("events", Integer, nullable=False),
    prefixes=["TEMPORARY"],
)
_prior = Table(
    "send_time_prior",
    _metadata,
    Column("hour", Integer, primary_key=True, autoincrement=False),
    Column("share", Float, nullable=False),
    prefixes=["TEMPORARY"],
)
_SCRATCH = (_offsets, _counts, _prior)


@dataclass(frozen=True)
class SendTimeRefresh:
    """What one refresh learnt: the population's distribution over the local hours (empty
    when nobody opened or clicked in the window), customers stored, and how many of them
    had history of their own."""

    population: tuple[float, ...]
    customers: int
    learnt: int

    @property
    def best_hour(self) -> int | None:
        """The population's favourite hour: what a customer without history gets."""
        if not self.population:
            return None
        return max(range(HOURS), key=lambda hour: (self.population[hour], -hour))


async def refresh_send_times(
    session: AsyncSession, now: datetime, program_zone: ZoneInfo
) -> SendTimeRefresh:
    """Recompute every customer's best hour as of ``now`` (``program_zone``: the zone of
    customers without a valid one), replacing the stored ones."""
    await serialize_writers(session, "send_times")
    for table in _SCRATCH:
        await scratch_table(session, table)
    since = now - timedelta(days=HISTORY_DAYS)
    await _fill_offsets(session, since, now, program_zone)
    await _fill_counts(session, since, now)
    population, learnt = await _population(session)
    await session.execute(delete(CustomerSendTime))
    customers = 0
    if population:
        await session.execute(
            insert(_prior), [{"hour": h, "share": s} for h, s in enumerate(population)]
        )
        customers = await _store_best_hours(session, population, now)
    for table in _SCRATCH:
        await drop_scratch_table(session, table)
    return SendTimeRefresh(population, customers, learnt)


def offset_periods(
    zone: ZoneInfo, start: datetime, end: datetime
) -> list[tuple[datetime, datetime, int]]:
    """``[start, end)`` cut where ``zone`` changes its UTC offset: (from, to, offset in
    seconds) for each part. Offsets change at most a few times a year, so days are
    stepped and a change is searched for by halves down to its minute."""

    def offset(moment: datetime) -> int:
        shift = moment.astimezone(zone).utcoffset()
        assert shift is not None
        return int(shift.total_seconds())

    periods = []
    begins, current, probe = start, offset(start), start
    while probe < end:
        step = min(probe + _DAY, end)
        if offset(step) != current:
            # Offsets change on whole minutes: find the first minute after ``base`` with
            # the new offset (``low`` minutes still has the old one, ``high`` the new).
            base = probe.replace(second=0, microsecond=0)
            low, high = 0, (step - base) // _MINUTE + 1
            while high - low > 1:
                middle = (low + high) // 2
                if offset(base + middle * _MINUTE) == current:
                    low = middle
                else:
                    high = middle
            change = base + high * _MINUTE
            periods.append((begins, change, current))
            begins, current = change, offset(change)
        probe = step
    periods.append((begins, end, current))
    return periods


def next_send_at(now: datetime, zone: ZoneInfo, hour: int) -> datetime:
    """When a message planned at ``now`` goes out at ``hour`` local time in ``zone``: now if
    that hour is running there, else the next time the wall clock reads ``hour``:00 (within
    a day). Built from the wall clock, so it is right across a daylight-saving change."""
    local = now.astimezone(zone)
    if local.hour == hour:
        return now
    day = local.date() if local.hour < hour else local.date() + _DAY
    return datetime.combine(day, time(hour), tzinfo=zone).astimezone(UTC)


async def _fill_offsets(
    session: AsyncSession, since: datetime, now: datetime, program_zone: ZoneInfo
) -> None:
    """Per stored time zone name, the UTC-offset periods over the history window."""
    names = (
        await session.execute(
            select(Customer.time_zone).distinct().where(Customer.time_zone.is_not(None))
        )
    ).scalars()
    rows = [
        {"time_zone": name, "starts_at": begins, "ends_at": ends, "offset_seconds": offset}
        for name in [_NO_ZONE, *names]
        for begins, ends, offset in offset_periods(
            stored_zone(name) or program_zone, since, now + _MINUTE
        )
    ]
    await session.execute(insert(_offsets), rows)


async def _fill_counts(session: AsyncSession, since: datetime, now: datetime) -> None:
    """Each customer's opens and clicks in the window, by local hour."""
    backend = backend_of(session)
    offsets = _offsets.c
    customers = Customer.__table__.c
    local_seconds = epoch_seconds(backend, Event.occurred_at) + offsets.offset_seconds
    hour = (local_seconds // 3600 % HOURS).label("hour")
    source = Event.__table__.join(Customer.__table__, customers.id == Event.customer_id).join(
        _offsets,
        and_(
            offsets.time_zone == func.coalesce(customers.time_zone, _NO_ZONE),
            Event.occurred_at >= offsets.starts_at,
            Event.occurred_at < offsets.ends_at,
        ),
    )
    counted = (
        select(Event.customer_id, hour, func.count())
        .select_from(source)
        .where(
            Event.type.in_(RESPONSES),
            # Half a year holds most events: read them straight through, not one by one
            # through the time index.
            Likely(Event.occurred_at > since),
            Likely(Event.occurred_at <= now),
        )
        .group_by(Event.customer_id, hour)
    )
    await session.execute(insert(_counts).from_select(["customer_id", "hour", "events"], counted))


def _totals() -> Any:
    """Each customer's opens and clicks in the window, all hours together."""
    counts = _counts.c
    return (
        select(counts.customer_id, func.sum(counts.events).label("events"))
        .group_by(counts.customer_id)
        .subquery("totals")
    )


async def _population(session: AsyncSession) -> tuple[tuple[float, ...], int]:
    """The average over customers with history of their shares per hour, and how many
    customers that is; empty shares when nobody has history."""
    counts = _counts.c
    totals = _totals()
    learnt = (await session.execute(select(func.count()).select_from(totals))).scalar_one()
    if not learnt:
        return (), 0
    by_hour = await session.execute(
        select(counts.hour, func.sum(counts.events * 1.0 / totals.c.events))
        .join(totals, totals.c.customer_id == counts.customer_id)
        .group_by(counts.hour)
    )
    shares = [0.0] * HOURS
    for hour, share in by_hour:
        shares[int(hour)] = float(share) / learnt
    return tuple(shares), int(learnt)


async def _store_best_hours(
    session: AsyncSession, population: tuple[float, ...], now: datetime
) -> int:
    """Every customer's best hour by their posterior counts; returns the rows written."""
    counts, prior = _counts.c, _prior.c
    k = literal(PRIOR_WEIGHT, Float)
    favourite = max(range(HOURS), key=lambda hour: (population[hour], -hour))
    favourite_share = population[favourite]
    totals = _totals()
    # Only an hour of the customer's own or the population's favourite can score highest:
    # every other hour has the prior alone, at most the favourite's.
    own = select(
        counts.customer_id,
        counts.hour,
        (counts.events + k * prior.share).label("score"),
        prior.share,
    ).join(_prior, prior.hour == counts.hour)
    favourite_row = select(
        totals.c.customer_id,
        literal(favourite, Integer).label("hour"),
        (k * favourite_share).label("score"),
        literal(favourite_share, Float).label("share"),
    )
    candidates = union_all(own, favourite_row).subquery("candidates")
    c = candidates.c
    ranked = select(
        c.customer_id,
        c.hour,
        c.score,
        func.row_number()
        .over(partition_by=c.customer_id, order_by=(c.score.desc(), c.share.desc(), c.hour))
        .label("rank"),
    ).subquery("ranked")
    best = (
        select(ranked.c.customer_id, ranked.c.hour, ranked.c.score)
        .where(ranked.c.rank == 1)
        .subquery("best")
    )
    customers = Customer.__table__.c
    events = func.coalesce(totals.c.events, 0)
    rows = (
        select(
            customers.id,
            func.coalesce(best.c.hour, favourite),
            func.coalesce(best.c.score, k * favourite_share) / (events + k),
            events,
            literal(now, UtcDateTime()),
        )
        .select_from(Customer.__table__)
        .outerjoin(totals, totals.c.customer_id == customers.id)
        .outerjoin(best, best.c.customer_id == customers.id)
    )
    result = await session.execute(
        insert(CustomerSendTime).from_select(
            ["customer_id", "hour", "share", "events", "refreshed_at"], rows
        )
    )
    return rowcount(result)
