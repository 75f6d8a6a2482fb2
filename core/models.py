"""The store's tables as typed SQLAlchemy 2 models.

Times are aware UTC datetimes (see :class:`core.db.types.UtcDateTime`);
money is ``Numeric`` in the database and ``float`` in Python.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from core.db.types import BigId, JsonDocument, UtcDateTime

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Money = Numeric(16, 2, asdecimal=False)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UtcDateTime(),
        dict[str, Any]: JsonDocument,
    }


class Customer(Base):
    """A person Cadence may talk to, keyed by the id the business knows them by."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    external_id: Mapped[str] = mapped_column(String(255), unique=True)
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(32))
    name: Mapped[str | None] = mapped_column(String(255))
    locale: Mapped[str | None] = mapped_column(String(35))
    time_zone: Mapped[str | None] = mapped_column(String(64))
    birthday: Mapped[date | None] = mapped_column(Date)
    registered_at: Mapped[datetime]
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Consent per channel: None means never asked, which counts as no for marketing.
    consent_email: Mapped[bool | None] = mapped_column(Boolean)
    consent_sms: Mapped[bool | None] = mapped_column(Boolean)
    consent_push: Mapped[bool | None] = mapped_column(Boolean)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (Index(None, "email"), Index(None, "registered_at"))


class Event(Base):
    """Something a customer did or that happened to them, at a moment in time.

    ``dedupe_key`` is a 64-bit hash of the idempotency key, or of the event's
    content when it has none; with ``occurred_at`` it is unique, so the same
    event delivered twice is stored once. Leading the unique index with the
    time keeps inserts of a time-ordered stream at the right edge of the index.
    """

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime]
    value: Mapped[float | None] = mapped_column(Money)
    properties: Mapped[dict[str, Any] | None]
    source: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    dedupe_key: Mapped[int] = mapped_column(BigInteger)

    # Every index here is paid for by every ingested event, so there is only the
    # one that deduplication needs; queries by time range use it too. Add others
    # when a measured query needs them.
    __table_args__ = (UniqueConstraint("occurred_at", "dedupe_key"),)


class CustomerRollup(Base):
    """Per-customer totals kept current at ingest, so rules read one row, not all events."""

    __tablename__ = "customer_rollups"

    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    first_purchase_at: Mapped[datetime | None]
    last_purchase_at: Mapped[datetime | None]
    purchase_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    revenue_total: Mapped[float] = mapped_column(Money, default=0, server_default=text("0"))
    last_login_at: Mapped[datetime | None]
    last_open_at: Mapped[datetime | None]
    last_click_at: Mapped[datetime | None]
    last_message_at: Mapped[datetime | None]
    first_event_at: Mapped[datetime | None]
    last_event_at: Mapped[datetime | None]
    event_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))


class PendingRollup(Base):
    """An event stored before its time: it joins the rollups once the clock reaches it."""

    __tablename__ = "pending_rollups"

    event_id: Mapped[int] = mapped_column(
        ForeignKey("events.id", ondelete="CASCADE"), primary_key=True
    )
    occurred_at: Mapped[datetime] = mapped_column(index=True)


class Suppression(Base):
    """An address that must never be contacted on a channel (opt-out, hard bounce, complaint)."""

    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    channel: Mapped[str] = mapped_column(String(32))
    address: Mapped[str] = mapped_column(String(320))
    reason: Mapped[str] = mapped_column(String(64))
    source: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("channel", "address"),)


class AuditEntry(Base):
    """One operator action: who did what to which object, and when."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(255))
    details: Mapped[dict[str, Any] | None]
    summary: Mapped[str | None] = mapped_column(Text)
