"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# See core.db.types for why each type differs between the dialects.
JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# Moments: naive UTC timestamp on PostgreSQL, epoch microseconds on SQLite.
UTC_TIME = sa.DateTime().with_variant(sa.BigInteger(), "sqlite")

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("at", UTC_TIME, nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=255), nullable=True),
        sa.Column("details", JSON_DOC, nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_at"), ["at"], unique=False)

    op.create_table(
        "customers",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("locale", sa.String(length=35), nullable=True),
        sa.Column("time_zone", sa.String(length=64), nullable=True),
        sa.Column("birthday", sa.Date(), nullable=True),
        sa.Column("registered_at", UTC_TIME, nullable=False),
        sa.Column("attributes", JSON_DOC, nullable=False),
        sa.Column("consent_email", sa.Boolean(), nullable=True),
        sa.Column("consent_sms", sa.Boolean(), nullable=True),
        sa.Column("consent_push", sa.Boolean(), nullable=True),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customers")),
        sa.UniqueConstraint("external_id", name=op.f("uq_customers_external_id")),
    )
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_customers_email"), ["email"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_customers_registered_at"), ["registered_at"], unique=False
        )

    op.create_table(
        "suppressions",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=True),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suppressions")),
        sa.UniqueConstraint("channel", "address", name=op.f("uq_suppressions_channel_address")),
    )
    op.create_table(
        "customer_rollups",
        sa.Column("customer_id", BIG_ID, nullable=False),
        sa.Column("first_purchase_at", UTC_TIME, nullable=True),
        sa.Column("last_purchase_at", UTC_TIME, nullable=True),
        sa.Column("purchase_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "revenue_total",
            sa.Numeric(precision=16, scale=2, asdecimal=False),
            server_default=sa.text("0"),
            nullable=False,
        ),
        sa.Column("last_login_at", UTC_TIME, nullable=True),
        sa.Column("last_open_at", UTC_TIME, nullable=True),
        sa.Column("last_click_at", UTC_TIME, nullable=True),
        sa.Column("last_message_at", UTC_TIME, nullable=True),
        sa.Column("first_event_at", UTC_TIME, nullable=True),
        sa.Column("last_event_at", UTC_TIME, nullable=True),
        sa.Column("event_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_customer_rollups_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_customer_rollups")),
    )
    op.create_table(
        "events",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("customer_id", BIG_ID, nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("occurred_at", UTC_TIME, nullable=False),
        sa.Column("value", sa.Numeric(precision=16, scale=2, asdecimal=False), nullable=True),
        sa.Column("properties", JSON_DOC, nullable=True),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("dedupe_key", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_events_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        sa.UniqueConstraint(
            "occurred_at", "dedupe_key", name=op.f("uq_events_occurred_at_dedupe_key")
        ),
    )
    op.create_table(
        "pending_rollups",
        sa.Column("event_id", BIG_ID, nullable=False),
        sa.Column("occurred_at", UTC_TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["events.id"],
            name=op.f("fk_pending_rollups_event_id_events"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_pending_rollups")),
    )
    with op.batch_alter_table("pending_rollups", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_pending_rollups_occurred_at"), ["occurred_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("pending_rollups", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pending_rollups_occurred_at"))

    op.drop_table("pending_rollups")

    op.drop_table("events")
    op.drop_table("customer_rollups")
    op.drop_table("suppressions")
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_customers_registered_at"))
        batch_op.drop_index(batch_op.f("ix_customers_email"))

    op.drop_table("customers")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_at"))

    op.drop_table("audit_log")
