"""Channel preference: the channel each customer answers best on, among those the contact
policy lets marketing use for them.

A message *responded* when it was opened or clicked (the events name their
message) or converted: it was the customer's last message within
:data:`CONVERSION_WINDOW` before a purchase (last touch, so a purchase credits
one message and one channel). Per customer and channel, over the messages
sent in the last :data:`HISTORY_DAYS` days, the response rate is smoothed
toward the channel's rate over everyone (a Beta prior worth
:data:`PRIOR_MESSAGES` messages): ``(responded + m * rate) / (sent + m)``. A
channel the customer was never sent on scores the channel's rate, so a
channel that works for most people is tried on a customer who does not
answer on theirs.

The customer's preference is the best-scoring channel (then the one with
more of their messages, then by name) whose :func:`~core.policy.channels.channel_status`
allows marketing now: an address, consent, no suppression or unsubscribe on
it. A customer sent nothing in the window, or allowed on none of the
channels, has no preference, and campaigns fall back to their own order.
Everything is a few set-based statements over scratch tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    case,
    cast,
    delete,
    func,
    insert,
    literal,
    select,
    true,
    union,
)
from sqlalchemy.ext.asyncio import AsyncSession

from core import event_types
from core.db.dialect import (
    backend_of,
    drop_scratch_table,
    rowcount,
    scratch_table,
    serialize_writers,
)
from core.db.moments import shifted
from core.db.sqlfunctions import JsonNumber, Likely
from core.db.types import UtcDateTime
from core.models import Customer, CustomerChannel, Event, OutboxMessage
from core.policy.channels import channel_status

HISTORY_DAYS = 180
"""Messages sent longer ago than this are left out."""
PRIOR_MESSAGES = 5.0
"""``m``: how many of the customer's own messages the channel's overall rate is worth."""
CONVERSION_WINDOW = timedelta(days=7)
"""A purchase this soon after a message converts the customer's last message before it."""
RESPONSES = (event_types.MESSAGE_OPENED, event_types.MESSAGE_CLICKED)

_metadata = MetaData()
# Keyed for the last-touch lookup: a customer's messages by time.
_sends = Table(
    "channel_sends",
    _metadata,
    Column("customer_id", BigInteger, primary_key=True, autoincrement=False),
    Column("sent_at", UtcDateTime(), primary_key=True),
    Column("outbox_id", BigInteger, primary_key=True, autoincrement=False),
    Column("channel", String(32), nullable=False),
    prefixes=["TEMPORARY"],
)
_responded = Table(
    "channel_responded",
    _metadata,
    Column("outbox_id", BigInteger, primary_key=True, autoincrement=False),
    prefixes=["TEMPORARY"],
)
_stats = Table(
    "channel_stats",
    _metadata,
    Column("customer_id", BigInteger, primary_key=True, autoincrement=False),
    Column("channel", String(32), primary_key=True),
    Column("messages", Integer, nullable=False),
    Column("responded", Integer, nullable=False),
    prefixes=["TEMPORARY"],
)
_prior = Table(
    "channel_prior",
    _metadata,
    Column("channel", String(32), primary_key=True),
    Column("rate", Float, nullable=False),
    prefixes=["TEMPORARY"],
)
_SCRATCH = (_sends, _responded, _stats, _prior)
_EVENTS = Event.__table__


@dataclass(frozen=True)
class ChannelRefresh:
    """What one refresh found: each channel's response rate over everyone sent on it, and
    how many customers got a preference."""

    rates: dict[str, float]
    customers: int


async def refresh_channel_preferences(session: AsyncSession, now: datetime) -> ChannelRefresh:
    """Recompute every customer's preferred channel as of ``now``, replacing the stored ones."""
    await serialize_writers(session, "channel_preferences")
    for table in _SCRATCH:
        await scratch_table(session, table)
    since = now - timedelta(days=HISTORY_DAYS)
    await _fill_sends(session, since, now)
    await _fill_responded(session, since, now)
    await _fill_stats(session)
    rates = await _channel_rates(session)
    await session.execute(delete(CustomerChannel))
    customers = 0
    if rates:
        await session.execute(
            insert(_prior), [{"channel": name, "rate": rate} for name, rate in rates.items()]
        )
        customers = await _store_preferences(session, list(rates), now)
    for table in _SCRATCH:
        await drop_scratch_table(session, table)
    return ChannelRefresh(rates, customers)


async def _fill_sends(session: AsyncSession, since: datetime, now: datetime) -> None:
    outbox = OutboxMessage.__table__.c
    sent = select(outbox.customer_id, outbox.sent_at, outbox.id, outbox.channel).where(
        outbox.state == "sent", outbox.sent_at > since, outbox.sent_at <= now
    )
    await session.execute(
        insert(_sends).from_select(["customer_id", "sent_at", "outbox_id", "channel"], sent)
    )


async def _fill_responded(session: AsyncSession, since: datetime, now: datetime) -> None:
    """The window's messages that were opened, clicked or converted."""
    sends = _sends.c
    # Half a year holds most events: read them straight through, not one by one through
    # the time index.
    in_window = (Likely(Event.occurred_at > since), Likely(Event.occurred_at <= now))
    named = cast(JsonNumber(_EVENTS.c.properties, "outbox_id"), BigInteger)
    answered = (
        select(sends.outbox_id)
        .select_from(Event.__table__)
        .join(_sends, (sends.outbox_id == named) & (sends.customer_id == Event.customer_id))
        .where(Event.type.in_(RESPONSES), *in_window)
    )
    last_touch = (
        select(sends.outbox_id)
        .where(
            sends.customer_id == Event.customer_id,
            sends.sent_at < Event.occurred_at,
            sends.sent_at
            >= shifted(backend_of(session), _EVENTS.c.occurred_at, -CONVERSION_WINDOW),
        )
        .order_by(sends.sent_at.desc())
        .limit(1)
        .scalar_subquery()
    )
    converted = select(last_touch.label("outbox_id")).where(
        Event.type == event_types.PURCHASE, *in_window
    )
    both = union(answered, converted).subquery("both")
    await session.execute(
        insert(_responded).from_select(
            ["outbox_id"], select(both.c.outbox_id).where(both.c.outbox_id.is_not(None))
        )
    )


async def _fill_stats(session: AsyncSession) -> None:
    """Messages and responded messages per customer and channel."""
    sends, responded = _sends.c, _responded.c
    per_channel = (
        select(sends.customer_id, sends.channel, func.count(), func.count(responded.outbox_id))
        .select_from(_sends.outerjoin(_responded, responded.outbox_id == sends.outbox_id))
        .group_by(sends.customer_id, sends.channel)
    )
    await session.execute(
        insert(_stats).from_select(["customer_id", "channel", "messages", "responded"], per_channel)
    )


async def _channel_rates(session: AsyncSession) -> dict[str, float]:
    stats = _stats.c
    rows = await session.execute(
        select(stats.channel, func.sum(stats.responded), func.sum(stats.messages))
        .group_by(stats.channel)
        .order_by(stats.channel)
    )
    return {channel: int(responded) / int(messages) for channel, responded, messages in rows}


async def _store_preferences(session: AsyncSession, channels: list[str], now: datetime) -> int:
    """Each customer with messages in the window: their best-scoring allowed channel."""
    stats, prior = _stats.c, _prior.c
    customers = Customer.__table__
    tried = select(stats.customer_id).distinct().subquery("tried")
    m = literal(PRIOR_MESSAGES, Float)
    messages = func.coalesce(stats.messages, 0)
    score = (func.coalesce(stats.responded, 0) + m * prior.rate) / (messages + m)
    allowed = case(*((prior.channel == name, channel_status(name)) for name in channels)) == 0
    source = (
        tried.join(_prior, true())
        .join(customers, customers.c.id == tried.c.customer_id)
        .outerjoin(
            _stats,
            (stats.customer_id == tried.c.customer_id) & (stats.channel == prior.channel),
        )
    )
    ranked = (
        select(
            tried.c.customer_id,
            prior.channel,
            score.label("score"),
            messages.label("messages"),
            func.row_number()
            .over(
                partition_by=tried.c.customer_id,
                order_by=(score.desc(), messages.desc(), prior.channel),
            )
            .label("rank"),
        )
        .select_from(source)
        .where(allowed)
        .subquery("ranked")
    )
    r = ranked.c
    best = select(r.customer_id, r.channel, r.score, r.messages, literal(now, UtcDateTime()))
    result = await session.execute(
        insert(CustomerChannel).from_select(
            ["customer_id", "channel", "response_rate", "messages", "refreshed_at"],
            best.where(r.rank == 1),
        )
    )
    return rowcount(result)
