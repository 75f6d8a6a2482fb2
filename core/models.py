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
    SmallInteger,
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

    # Every index here is paid for by every ingested event: the one deduplication
    # needs (queries by time range use it too), and one that measurement reads alone:
    # a customer's events of a type in a window (goal conversions, purchases per
    # customer, program event counts) without touching the rows.
    __table_args__ = (
        UniqueConstraint("occurred_at", "dedupe_key"),
        Index(None, "type", "customer_id", "occurred_at", "value"),
    )


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


class CustomerStage(Base):
    """The lifecycle stage a customer is in now: exactly one row per customer.

    ``reactivated_at`` is when the customer last came back from the program's
    dormant stage (``inactive`` by default); stage rules read it. ``stage`` is
    empty only inside a refresh, for a customer being placed for the first time.
    """

    __tablename__ = "customer_stages"

    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    stage: Mapped[str | None] = mapped_column(String(64))
    entered_at: Mapped[datetime]
    reactivated_at: Mapped[datetime | None]

    __table_args__ = (Index(None, "stage"),)


class StageTransition(Base):
    """A customer moving from one stage to another (``from_stage`` None: first assignment)."""

    __tablename__ = "stage_transitions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    from_stage: Mapped[str | None] = mapped_column(String(64))
    to_stage: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]

    # Stage KPIs read a set of customers' moves after a moment, and everyone's moves after
    # the window's start, from these indexes alone (see core.measure.stages).
    __table_args__ = (
        Index(None, "customer_id", "at", "from_stage", "to_stage"),
        Index(None, "at", "from_stage", "to_stage", "customer_id"),
    )


class CustomerScore(Base):
    """Scores and windowed totals computed in batch by ``cadence intel refresh``.

    RFM parts are quintiles (1 worst, 5 best) and ``rfm_score`` reads them as
    one number (``555`` is the best customer); windowed totals count purchases
    up to the refresh's "now". CLV columns stay empty until a model was fitted.
    """

    __tablename__ = "customer_scores"

    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    recency_score: Mapped[int | None] = mapped_column(Integer)
    frequency_score: Mapped[int | None] = mapped_column(Integer)
    monetary_score: Mapped[int | None] = mapped_column(Integer)
    rfm_score: Mapped[int | None] = mapped_column(Integer)
    engagement_score: Mapped[float] = mapped_column(default=0.0, server_default=text("0"))
    lead_score: Mapped[float] = mapped_column(default=0.0, server_default=text("0"))
    purchases_30d: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    purchases_90d: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    purchases_365d: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    revenue_90d: Mapped[float] = mapped_column(Money, default=0, server_default=text("0"))
    revenue_365d: Mapped[float] = mapped_column(Money, default=0, server_default=text("0"))
    expected_purchases_90d: Mapped[float | None]
    p_alive: Mapped[float | None]
    clv_12m: Mapped[float | None]
    refreshed_at: Mapped[datetime]


class CustomerSendTime(Base):
    """A customer's best local hour to be sent marketing, from their opens and clicks
    smoothed toward everyone's (see :mod:`core.intel.send_time`); computed in batch."""

    __tablename__ = "customer_send_times"

    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    hour: Mapped[int] = mapped_column(SmallInteger)
    """0-23, on the wall clock of the customer's time zone (the program's when they have none)."""
    share: Mapped[float]
    """The smoothed share of the customer's opens and clicks that fall in that hour."""
    events: Mapped[int] = mapped_column(Integer)
    """The customer's own opens and clicks it was learnt from (0: the population's hour)."""
    refreshed_at: Mapped[datetime]


class CustomerChannel(Base):
    """The channel a customer answers best on, among those they may be sent marketing on
    (see :mod:`core.intel.channel_preference`); computed in batch. No row: no preference."""

    __tablename__ = "customer_channels"

    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    channel: Mapped[str] = mapped_column(String(32))
    response_rate: Mapped[float]
    """Smoothed share of the channel's messages the customer opened, clicked or bought after."""
    messages: Mapped[int] = mapped_column(Integer)
    """Messages the customer was sent on that channel in the window (0: never tried)."""
    refreshed_at: Mapped[datetime]


class Segment(Base):
    """A target group: a rule over customers, optionally within one stage.

    Definitions come from the program files; ``size`` and ``refreshed_at``
    describe the membership materialised by the last refresh.
    """

    __tablename__ = "segments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    stage: Mapped[str | None] = mapped_column(String(64))
    rule: Mapped[str] = mapped_column(Text)
    tags: Mapped[list[str]] = mapped_column(JsonDocument, default=list)
    archived: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    size: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    refreshed_at: Mapped[datetime | None]
    revision: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    """Counts the refreshes of the membership: a refresh pass that read the members
    before another refresh ran sees the number move and reads them again."""
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class SegmentMember(Base):
    """A customer in a segment as of the last refresh, and since when."""

    __tablename__ = "segment_members"

    segment_id: Mapped[int] = mapped_column(
        ForeignKey("segments.id", ondelete="CASCADE"), primary_key=True
    )
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    entered_at: Mapped[datetime]

    # Covers a refresh pass's read of every customer's memberships.
    __table_args__ = (Index(None, "customer_id", "segment_id"),)


class SegmentChange(Base):
    """A customer entering (``entered`` true) or leaving a segment: what triggers react to."""

    __tablename__ = "segment_changes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    segment_id: Mapped[int] = mapped_column(ForeignKey("segments.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    entered: Mapped[bool] = mapped_column(Boolean)
    at: Mapped[datetime] = mapped_column(index=True)

    __table_args__ = (Index(None, "segment_id", "at"),)


class SegmentSize(Base):
    """A segment's size after one refresh, with how many entered and left: its history."""

    __tablename__ = "segment_sizes"

    segment_id: Mapped[int] = mapped_column(
        ForeignKey("segments.id", ondelete="CASCADE"), primary_key=True
    )
    at: Mapped[datetime] = mapped_column(primary_key=True)
    size: Mapped[int] = mapped_column(Integer)
    entered: Mapped[int] = mapped_column(Integer)
    left: Mapped[int] = mapped_column(Integer)


class ClvFit(Base):
    """One fit of the BG/NBD and Gamma-Gamma models: parameters and fit quality."""

    __tablename__ = "clv_fits"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fitted_at: Mapped[datetime] = mapped_column(index=True)
    customers: Mapped[int] = mapped_column(Integer)
    log_likelihood: Mapped[float]
    time_unit: Mapped[str] = mapped_column(String(16))
    parameters: Mapped[dict[str, Any]]


class ProgramVersion(Base):
    """One application of the program files: what changed, by whom, and the files' digest.

    Applying files whose digest equals the latest version's records nothing.
    """

    __tablename__ = "program_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    applied_at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(255))
    digest: Mapped[str] = mapped_column(String(64))
    changes: Mapped[dict[str, Any]]
    """Names added, changed and removed, per kind (``campaigns``, ``segments``)."""


class Campaign(Base):
    """A campaign as the planner runs it: from the program files, or launched by hand.

    ``definition`` is the campaign's spec as JSON (see
    :class:`core.program.model.CampaignSpec`); the columns beside it are the
    parts the planner and the console filter and sort on. ``status`` starts
    as the spec says, then follows pause and resume until the spec changes.
    """

    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    origin: Mapped[str] = mapped_column(String(16))
    """``program`` (from the files) or ``launch`` (an ad-hoc launch)."""
    status: Mapped[str] = mapped_column(String(16))
    priority: Mapped[int] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(32))
    category: Mapped[str] = mapped_column(String(16))
    definition: Mapped[dict[str, Any]]
    digest: Mapped[str] = mapped_column(String(64))
    """The definition's digest: a changed digest is a changed campaign."""
    schedule_from: Mapped[datetime]
    """Cron slots after this moment are due: when the campaign (or its schedule) was applied."""
    program_version_id: Mapped[int | None] = mapped_column(ForeignKey("program_versions.id"))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class CampaignRun(Base):
    """One run of a campaign: its audience planned into outbox rows, with counts by outcome.

    ``run_key`` names the occasion (a cron slot, a launch, a "run now"), so
    planning the same key again finds this row and enqueues nothing.
    ``outcomes`` holds every exclusion reason with its count, and ``lost_to``
    the campaigns that won a customer over this one.
    """

    __tablename__ = "campaign_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    run_key: Mapped[str] = mapped_column(String(128))
    occasion: Mapped[str] = mapped_column(String(16))
    """``schedule``, ``manual`` (run now) or ``launch``."""
    status: Mapped[str] = mapped_column(String(16))
    """``pending`` (waiting for its time), ``planned`` or ``failed``."""
    due_at: Mapped[datetime] = mapped_column(index=True)
    planned_at: Mapped[datetime | None]
    requested_by: Mapped[str | None] = mapped_column(String(255))
    targeted: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    queued: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    held: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    control: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    excluded: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    outcomes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (UniqueConstraint("campaign_id", "run_key"),)


class OutboxMessage(Base):
    """A message planned for one customer by one run, before and after it is sent.

    Control members get a row too, with state ``control``: never sent, but
    counted by the contact policy exactly like a message, so both arms of a
    campaign see the same rest of the program. ``due_at`` is when it may go
    out: later than planned when quiet hours hold it.
    """

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("campaign_runs.id", ondelete="CASCADE"))
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(32))
    category: Mapped[str] = mapped_column(String(16))
    variant: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    """``queued`` -> ``sending`` -> ``sent`` | ``retry`` | ``failed``; ``cancelled`` when the
    customer said no between planning and sending; ``control`` is never sent."""
    due_at: Mapped[datetime]
    created_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    next_attempt_at: Mapped[datetime | None]
    """For ``retry``: when to try again; for ``sending``: when the lease runs out and
    another worker may take the message over."""
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    sent_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    """Why the last attempt did not send (the SMTP reply, the template error...)."""

    __table_args__ = (
        UniqueConstraint("run_id", "customer_id"),
        # The contact policy counts a customer's recent messages through this index.
        Index(None, "customer_id", "due_at"),
        Index(None, "state", "due_at"),
        Index(None, "state", "next_attempt_at"),
        # The hourly sending limit counts a channel's recent sends through this index.
        Index(None, "channel", "sent_at"),
        # Who was sent a message in a window (stage coverage), and a customer's runs and
        # arms (goal conversions), read from this index alone.
        Index(None, "customer_id", "sent_at", "run_id", "state"),
        # Each run's arms counted, and its messages sent in a window, from this index alone.
        Index(None, "run_id", "state", "sent_at"),
    )


class OutboxSend(Base):
    """A send the server accepted, written the moment it did, before that connection
    sends another message: the durable record that keeps a crash from repeating it.

    Marking the outbox row itself sent touches five of its indexes, and delivery
    records a handful of sends every few milliseconds; an append to this narrow
    table costs a tenth of that. :func:`core.outbox.fold_sends` moves the sends
    into their outbox rows (``sent``, ``sent_at``) a batch at a time.
    """

    __tablename__ = "outbox_sends"

    outbox_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("outbox.id", ondelete="CASCADE"), primary_key=True
    )
    sent_at: Mapped[datetime]


class CampaignContact(Base):
    """When a campaign last reached a customer (either arm), and how many times it has.

    Cooldowns read ``last_due_at``; content rotation picks variant ``times mod n``.
    """

    __tablename__ = "campaign_contacts"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    last_due_at: Mapped[datetime]
    times: Mapped[int] = mapped_column(Integer)


class InAppMessage(Base):
    """A message for the customer to read inside the product, served by the HTTP API."""

    __tablename__ = "in_app_messages"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    outbox_id: Mapped[int] = mapped_column(ForeignKey("outbox.id", ondelete="CASCADE"), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    campaign: Mapped[str] = mapped_column(String(128))
    title: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    html: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    read_at: Mapped[datetime | None]

    __table_args__ = (Index(None, "customer_id", "created_at"),)


class Recommendation(Base):
    """Customers who bought ``product_id`` also bought ``recommended_id``: co-purchase counts
    from the last batch computation, strongest first per product."""

    __tablename__ = "recommendations"

    product_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    recommended_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    customers: Mapped[int] = mapped_column(Integer)
    """Customers who bought both."""
    score: Mapped[float]
    """How much more often the pair is bought together than chance would have it (lift)."""
    computed_at: Mapped[datetime]


class CustomerRecommendation(Base):
    """A product recommended to one customer (best first by ``rank``), from what they
    bought and what others bought with it; computed in batch, read by templates."""

    __tablename__ = "customer_recommendations"

    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    rank: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[str] = mapped_column(String(128))
    score: Mapped[float]


class SigningKey(Base):
    """A secret the nodes share through the store, e.g. the key that signs tracking links."""

    __tablename__ = "signing_keys"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    secret: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime]


class JobRun(Base):
    """One execution of a scheduler job: when, on which node, how it ended and its counts."""

    __tablename__ = "job_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    job: Mapped[str] = mapped_column(String(128))
    node: Mapped[str] = mapped_column(String(128))
    started_at: Mapped[datetime] = mapped_column(index=True)
    finished_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16))
    """``running``, ``ok``, ``failed``, ``cancelled`` (stopped before it finished) or
    ``interrupted`` (its node died; marked by the next leader)."""
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_job_runs_job_started_at", "job", "started_at"),)


class SchedulerNode(Base):
    """A running ``cadence run`` process: its role, its heartbeat and the leader's jobs."""

    __tablename__ = "scheduler_nodes"

    node: Mapped[str] = mapped_column(String(128), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    """``leader`` (runs the schedule) or ``follower`` (delivers and serves the API)."""
    started_at: Mapped[datetime]
    heartbeat_at: Mapped[datetime]
    jobs: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """On the leader: each scheduled job with its next fire time (ISO), for the console."""


class Journey(Base):
    """A journey the program files define, as the journey tick last synced it.

    ``ticked_at`` is the end of the time window the last tick read: events,
    segment entries and stage entries after it are the next tick's to read.
    Empty until the first tick, which reads no window: a new journey starts with
    what happens after it.
    """

    __tablename__ = "journeys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    definition: Mapped[dict[str, Any]]
    """The journey's spec as JSON (see :class:`core.program.model.JourneySpec`)."""
    digest: Mapped[str] = mapped_column(String(64))
    ticked_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class JourneyState(Base):
    """Where one customer is in one journey: the step, since when, and until when it waits.

    ``wake_at`` is when the step needs the tick's attention: the end of a
    ``wait``, the timeout of a ``wait_until``, or ``step_since`` for a step that
    acts at once; it is empty once the pass ended (``status`` ``exited`` or
    ``completed``, with ``ended_at`` and ``exit_reason``). ``entries`` counts the
    customer's passes, for the journey's re-entry rules.
    """

    __tablename__ = "journey_states"

    journey_id: Mapped[int] = mapped_column(
        ForeignKey("journeys.id", ondelete="CASCADE"), primary_key=True
    )
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    step: Mapped[str] = mapped_column(String(40))
    """The current step's id; after the pass ended, the step it ended at."""
    status: Mapped[str] = mapped_column(String(16))
    """``active``, ``exited`` or ``completed``."""
    entered_at: Mapped[datetime]
    step_since: Mapped[datetime]
    wake_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    exit_reason: Mapped[str | None] = mapped_column(String(128))
    entries: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))

    # A tick reads the customers due at a step: one index range per (journey, step).
    __table_args__ = (Index(None, "journey_id", "step", "wake_at"),)


class KpiSnapshot(Base):
    """One KPI as of the end of one day: of a lifecycle stage, or of the whole program
    (``stage`` empty). Written by :func:`core.measure.snapshots.write_kpi_snapshot`, which
    replaces a day's rows whole; trends read these instead of the events."""

    __tablename__ = "kpi_snapshots"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    """The day in the program's time zone; the KPIs describe the moment it ended."""
    stage: Mapped[str] = mapped_column(String(64), primary_key=True)
    kpi: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[float | None]
    """None for a rate of nobody (a stage with no customers)."""
    target: Mapped[float | None]
    """The program's target when the snapshot was written, if it has one."""
    window_days: Mapped[int] = mapped_column(Integer)
    computed_at: Mapped[datetime]


class StoredUplift(Base):
    """A campaign's uplift as the scheduler last measured it (see :mod:`core.figures`):
    measuring every campaign's goal reads the goal events, too slow for a screen at a
    million customers, so the console reads this row and says when it was measured."""

    __tablename__ = "campaign_uplifts"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    verdict: Mapped[str] = mapped_column(String(64))
    """The :class:`core.measure.uplift.Verdict`'s value."""
    uplift: Mapped[float | None]
    """Absolute uplift (a rate difference); None when the verdict gives no figure."""
    uplift_low: Mapped[float | None]
    uplift_high: Mapped[float | None]
    treated: Mapped[int] = mapped_column(Integer)
    control: Mapped[int] = mapped_column(Integer)
    """Members of each arm over the runs whose goal window closed."""
    next_close: Mapped[datetime | None]
    """When the earliest open run's goal window closes."""
    computed_at: Mapped[datetime]


class DailyMessageCount(Base):
    """How many messages of one channel in one state were due on one day, as the scheduler
    last counted them (see :mod:`core.figures`); the dashboard reads these rows."""

    __tablename__ = "message_tallies"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    """The day the messages were due, in the program's time zone."""
    channel: Mapped[str] = mapped_column(String(32), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), primary_key=True)
    messages: Mapped[int] = mapped_column(Integer)
    computed_at: Mapped[datetime]
