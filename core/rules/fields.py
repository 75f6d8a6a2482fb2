"""The field catalogue: every name a rule can read, its type, and where it comes from.

This is data, not code: the checker reads the types, the compiler the column
expressions and tables, the console and documentation the descriptions.
Customers without a rollup, stage or score row still match rules (the
tables are LEFT JOINed): counts and money then read as 0, everything else
as null.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Table, func
from sqlalchemy.sql.util import find_tables

from core.models import Base, Customer, CustomerRollup, CustomerScore, CustomerStage, Event
from core.rules.nodes import Type

CUSTOMERS: Table = Base.metadata.tables[Customer.__tablename__]
EVENTS: Table = Base.metadata.tables[Event.__tablename__]
_ROLLUPS: Table = Base.metadata.tables[CustomerRollup.__tablename__]
_STAGES: Table = Base.metadata.tables[CustomerStage.__tablename__]
_SCORES: Table = Base.metadata.tables[CustomerScore.__tablename__]

JOINED_TABLES: Mapping[str, Table] = {table.name: table for table in (_ROLLUPS, _STAGES, _SCORES)}
"""The per-customer tables a rule may LEFT JOIN on ``customer_id``, in join order."""


@dataclass(frozen=True)
class FieldSpec:
    """One field: its name in rules, its type, its SQL expression and the tables it reads."""

    name: str
    type: Type
    column: ColumnElement[Any]
    tables: frozenset[str]
    description: str


def _spec(name: str, kind: Type, column: ColumnElement[Any], description: str) -> FieldSpec:
    tables = frozenset(table.name for table in find_tables(column, check_columns=True))
    return FieldSpec(name, kind, column, tables, description)


def _zero_when_missing(column: ColumnElement[Any]) -> ColumnElement[Any]:
    return func.coalesce(column, 0)


_c = CUSTOMERS.c
_r = _ROLLUPS.c
_st = _STAGES.c
_sc = _SCORES.c

_SPECS = (
    _spec("external_id", Type.TEXT, _c.external_id, "the id the business knows the customer by"),
    _spec("email", Type.TEXT, _c.email, "email address"),
    _spec("phone", Type.TEXT, _c.phone, "phone number"),
    _spec("name", Type.TEXT, _c.name, "full name"),
    _spec("locale", Type.TEXT, _c.locale, "preferred locale, e.g. pt-PT"),
    _spec("time_zone", Type.TEXT, _c.time_zone, "IANA time zone, e.g. Europe/Lisbon"),
    _spec("birthday", Type.DATE, _c.birthday, "date of birth"),
    _spec("registered_at", Type.TIME, _c.registered_at, "when the customer registered"),
    _spec("consent_email", Type.BOOL, _c.consent_email, "consent to email (null: never asked)"),
    _spec("consent_sms", Type.BOOL, _c.consent_sms, "consent to SMS (null: never asked)"),
    _spec("consent_push", Type.BOOL, _c.consent_push, "consent to push (null: never asked)"),
    _spec("first_purchase_at", Type.TIME, _r.first_purchase_at, "first purchase"),
    _spec("last_purchase_at", Type.TIME, _r.last_purchase_at, "latest purchase"),
    _spec("last_login_at", Type.TIME, _r.last_login_at, "latest login"),
    _spec("last_open_at", Type.TIME, _r.last_open_at, "latest message opened"),
    _spec("last_click_at", Type.TIME, _r.last_click_at, "latest link clicked"),
    _spec("last_message_at", Type.TIME, _r.last_message_at, "latest message sent to them"),
    _spec("first_event_at", Type.TIME, _r.first_event_at, "first event of any kind"),
    _spec("last_event_at", Type.TIME, _r.last_event_at, "latest event of any kind"),
    _spec(
        "purchase_count",
        Type.NUMBER,
        _zero_when_missing(_r.purchase_count),
        "purchases ever",
    ),
    _spec(
        "revenue_total",
        Type.NUMBER,
        _zero_when_missing(_r.revenue_total),
        "revenue ever",
    ),
    _spec("event_count", Type.NUMBER, _zero_when_missing(_r.event_count), "events ever"),
    _spec(
        "last_active_at",
        Type.TIME,
        func.coalesce(_r.last_event_at, _c.registered_at),
        "latest event, or registration when there is none",
    ),
    _spec("stage", Type.TEXT, _st.stage, "current lifecycle stage"),
    _spec("stage_entered_at", Type.TIME, _st.entered_at, "when the current stage began"),
    _spec(
        "reactivated_at",
        Type.TIME,
        _st.reactivated_at,
        "when the customer last came back from the dormant stage",
    ),
    _spec("recency_score", Type.NUMBER, _sc.recency_score, "RFM recency quintile (5 best)"),
    _spec("frequency_score", Type.NUMBER, _sc.frequency_score, "RFM frequency quintile (5 best)"),
    _spec("monetary_score", Type.NUMBER, _sc.monetary_score, "RFM monetary quintile (5 best)"),
    _spec("rfm_score", Type.NUMBER, _sc.rfm_score, "RFM as one number, 111 to 555"),
    _spec("engagement_score", Type.NUMBER, _sc.engagement_score, "engagement score"),
    _spec("lead_score", Type.NUMBER, _sc.lead_score, "lead score"),
    _spec(
        "purchases_30d",
        Type.NUMBER,
        _zero_when_missing(_sc.purchases_30d),
        "purchases in the last 30 days",
    ),
    _spec(
        "purchases_90d",
        Type.NUMBER,
        _zero_when_missing(_sc.purchases_90d),
        "purchases in the last 90 days",
    ),
    _spec(
        "purchases_365d",
        Type.NUMBER,
        _zero_when_missing(_sc.purchases_365d),
        "purchases in the last 365 days",
    ),
    _spec(
        "revenue_90d",
        Type.NUMBER,
        _zero_when_missing(_sc.revenue_90d),
        "revenue in the last 90 days",
    ),
    _spec(
        "revenue_365d",
        Type.NUMBER,
        _zero_when_missing(_sc.revenue_365d),
        "revenue in the last 365 days",
    ),
    _spec(
        "expected_purchases_90d",
        Type.NUMBER,
        _sc.expected_purchases_90d,
        "purchases the CLV model expects in the next 90 days",
    ),
    _spec("p_alive", Type.NUMBER, _sc.p_alive, "probability the customer is still active"),
    _spec("clv_12m", Type.NUMBER, _sc.clv_12m, "expected revenue in the next 12 months"),
)

FIELDS: Mapping[str, FieldSpec] = {spec.name: spec for spec in _SPECS}
"""Every field a rule can read, by name."""

FIELD_NAMES: tuple[str, ...] = tuple(FIELDS)


def describe_fields() -> list[tuple[str, str, str]]:
    """(name, type, description) for every field, for documentation and the console."""
    return [(spec.name, spec.type.value, spec.description) for spec in _SPECS]


_e = EVENTS.c
_EVENT_SPECS = (
    _spec("value", Type.NUMBER, _e.value, "the event's amount (a purchase's, a win's or loss's)"),
    _spec("source", Type.TEXT, _e.source, "where the event came from, e.g. api or import"),
    _spec("occurred_at", Type.TIME, _e.occurred_at, "when the event happened"),
)

EVENT_FIELDS: Mapping[str, FieldSpec] = {spec.name: spec for spec in _EVENT_SPECS}
"""What a rule on one event reads; ``attr("name")`` there reads the event's properties."""
