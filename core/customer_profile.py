"""One customer as an operator looks them up: found by id, e-mail or name, then their stage
history, scores, segments, latest events and the messages they were sent.

Every read goes through an index or is bounded: ids and e-mail addresses are index
lookups; a name is a prefix match that stops at ``limit`` rows; stage moves, segment
memberships and messages are read through their ``customer_id`` indexes. Events have no
index by customer (every index is paid for by every ingested event), so the latest
events are those in the :data:`EVENT_WINDOW` before the customer's last event (from the
rollups), read through the time index; the rollups carry the whole history's totals.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import (
    Campaign,
    Customer,
    CustomerRollup,
    CustomerScore,
    CustomerStage,
    Event,
    OutboxMessage,
    Segment,
    SegmentMember,
    StageTransition,
)

SEARCH_LIMIT = 20
HISTORY = 20
"""How many stage moves, events and messages a profile lists (the latest)."""
EVENT_WINDOW = timedelta(days=2)
"""The latest events are read from this long before the customer's last event."""


@dataclass(frozen=True)
class CustomerMatch:
    """A customer a search found."""

    id: int
    external_id: str
    email: str | None
    name: str | None
    stage: str | None


@dataclass(frozen=True)
class StageMove:
    at: datetime
    from_stage: str | None
    to_stage: str


@dataclass(frozen=True)
class Scores:
    """The batch scores of ``cadence intel refresh``; CLV and P(alive) need a fitted model."""

    rfm_score: int | None
    engagement_score: float
    lead_score: float
    clv_12m: float | None
    p_alive: float | None
    expected_purchases_90d: float | None
    purchases_90d: int
    revenue_365d: float
    refreshed_at: datetime


@dataclass(frozen=True)
class Totals:
    """The customer's whole history, as the rollups keep it."""

    event_count: int
    purchase_count: int
    revenue_total: float
    first_purchase_at: datetime | None
    last_purchase_at: datetime | None
    last_event_at: datetime | None
    last_open_at: datetime | None
    last_click_at: datetime | None


@dataclass(frozen=True)
class Membership:
    segment: str
    entered_at: datetime


@dataclass(frozen=True)
class RecentEvent:
    occurred_at: datetime
    type: str
    value: float | None
    source: str


@dataclass(frozen=True)
class ReceivedMessage:
    """A message planned for the customer and how it ended (its outbox state and error)."""

    id: int
    campaign: str
    channel: str
    variant: str
    state: str
    due_at: datetime
    sent_at: datetime | None
    error: str | None


@dataclass(frozen=True)
class CustomerProfile:
    customer: CustomerMatch
    phone: str | None
    registered_at: datetime
    time_zone: str | None
    consent: dict[str, bool | None]
    """Per channel: True, False or None (never asked)."""
    stage_since: datetime | None
    history: list[StageMove]
    """Latest first."""
    scores: Scores | None
    totals: Totals | None
    segments: list[Membership]
    events: list[RecentEvent]
    """Latest first, from the :data:`EVENT_WINDOW` before the last event."""
    messages: list[ReceivedMessage]
    """Latest due first."""


async def find_customers(
    session: AsyncSession, text: str, *, limit: int = SEARCH_LIMIT
) -> list[CustomerMatch]:
    """Customers whose id (Cadence's or the business's) or e-mail address is ``text``,
    then those whose name starts with it (any case), at most ``limit``."""
    wanted = text.strip()
    if not wanted:
        return []
    exact = [Customer.external_id == wanted, Customer.email.in_({wanted, wanted.lower()})]
    if wanted.isdigit() and int(wanted) < 2**63:
        exact.append(Customer.id == int(wanted))
    found = await _matches(session, or_(*exact), limit)
    if len(found) < limit and "@" not in wanted:
        pattern = _escape_like(wanted.lower()) + "%"
        named = func.lower(Customer.name).like(pattern, escape="\\")
        others = Customer.id.not_in([match.id for match in found])
        found += await _matches(session, and_(named, others), limit - len(found), by_name=True)
    return found


async def _matches(
    session: AsyncSession, condition: ColumnElement[bool], limit: int, *, by_name: bool = False
) -> list[CustomerMatch]:
    query = (
        select(
            Customer.id, Customer.external_id, Customer.email, Customer.name, CustomerStage.stage
        )
        .outerjoin(CustomerStage, CustomerStage.customer_id == Customer.id)
        .where(condition)
        .limit(limit)
    )
    if by_name:
        query = query.order_by(Customer.name, Customer.id)
    return [CustomerMatch(*row) for row in (await session.execute(query)).all()]


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def customer_profile(session: AsyncSession, customer_id: int) -> CustomerProfile | None:
    """Everything the explorer shows of customer ``customer_id``; None if there is none."""
    row = (
        await session.execute(
            select(Customer, CustomerStage.stage, CustomerStage.entered_at)
            .outerjoin(CustomerStage, CustomerStage.customer_id == Customer.id)
            .where(Customer.id == customer_id)
        )
    ).one_or_none()
    if row is None:
        return None
    customer, stage, stage_since = row
    totals = await _totals(session, customer_id)
    return CustomerProfile(
        customer=CustomerMatch(
            customer.id, customer.external_id, customer.email, customer.name, stage
        ),
        phone=customer.phone,
        registered_at=customer.registered_at,
        time_zone=customer.time_zone,
        consent={
            "email": customer.consent_email,
            "sms": customer.consent_sms,
            "push": customer.consent_push,
        },
        stage_since=stage_since,
        history=await _history(session, customer_id),
        scores=await _scores(session, customer_id),
        totals=totals,
        segments=await _segments(session, customer_id),
        events=await _events(session, customer_id, totals.last_event_at if totals else None),
        messages=await _messages(session, customer_id),
    )


async def _history(session: AsyncSession, customer_id: int) -> list[StageMove]:
    rows = await session.execute(
        select(StageTransition.at, StageTransition.from_stage, StageTransition.to_stage)
        .where(StageTransition.customer_id == customer_id)
        .order_by(StageTransition.at.desc(), StageTransition.id.desc())
        .limit(HISTORY)
    )
    return [StageMove(*row) for row in rows.all()]


async def _scores(session: AsyncSession, customer_id: int) -> Scores | None:
    row = (
        await session.execute(
            select(
                CustomerScore.rfm_score,
                CustomerScore.engagement_score,
                CustomerScore.lead_score,
                CustomerScore.clv_12m,
                CustomerScore.p_alive,
                CustomerScore.expected_purchases_90d,
                CustomerScore.purchases_90d,
                CustomerScore.revenue_365d,
                CustomerScore.refreshed_at,
            ).where(CustomerScore.customer_id == customer_id)
        )
    ).one_or_none()
    return None if row is None else Scores(*row)


async def _totals(session: AsyncSession, customer_id: int) -> Totals | None:
    row = (
        await session.execute(
            select(
                CustomerRollup.event_count,
                CustomerRollup.purchase_count,
                CustomerRollup.revenue_total,
                CustomerRollup.first_purchase_at,
                CustomerRollup.last_purchase_at,
                CustomerRollup.last_event_at,
                CustomerRollup.last_open_at,
                CustomerRollup.last_click_at,
            ).where(CustomerRollup.customer_id == customer_id)
        )
    ).one_or_none()
    return None if row is None else Totals(*row)


async def _segments(session: AsyncSession, customer_id: int) -> list[Membership]:
    rows = await session.execute(
        select(Segment.name, SegmentMember.entered_at)
        .join(Segment, Segment.id == SegmentMember.segment_id)
        .where(SegmentMember.customer_id == customer_id)
        .order_by(Segment.name)
    )
    return [Membership(*row) for row in rows.all()]


async def _events(
    session: AsyncSession, customer_id: int, last_event_at: datetime | None
) -> list[RecentEvent]:
    if last_event_at is None:
        return []
    rows = await session.execute(
        select(Event.occurred_at, Event.type, Event.value, Event.source)
        .where(
            Event.occurred_at > last_event_at - EVENT_WINDOW,
            Event.occurred_at <= last_event_at,
            Event.customer_id == customer_id,
        )
        .order_by(Event.occurred_at.desc(), Event.id.desc())
        .limit(HISTORY)
    )
    return [RecentEvent(*row) for row in rows.all()]


async def _messages(session: AsyncSession, customer_id: int) -> list[ReceivedMessage]:
    rows = await session.execute(
        select(
            OutboxMessage.id,
            Campaign.name,
            OutboxMessage.channel,
            OutboxMessage.variant,
            OutboxMessage.state,
            OutboxMessage.due_at,
            OutboxMessage.sent_at,
            OutboxMessage.error,
        )
        .join(Campaign, Campaign.id == OutboxMessage.campaign_id)
        .where(OutboxMessage.customer_id == customer_id)
        .order_by(OutboxMessage.due_at.desc(), OutboxMessage.id.desc())
        .limit(HISTORY)
    )
    return [ReceivedMessage(*row) for row in rows.all()]
