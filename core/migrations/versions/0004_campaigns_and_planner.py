"""campaigns and the planner: program versions, campaigns, runs, outbox, contact history

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# See core.db.types for why each type differs between the dialects.
JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC_TIME = sa.DateTime().with_variant(sa.BigInteger(), "sqlite")

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _references(
    table: str, column: str, target: str, ondelete: str | None = "CASCADE"
) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"), ondelete=ondelete
    )


def _count(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.Integer(), server_default=sa.text("0"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "program_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("applied_at", UTC_TIME, nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("changes", JSON_DOC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_program_versions")),
    )

    op.create_table(
        "campaigns",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("definition", JSON_DOC, nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("schedule_from", UTC_TIME, nullable=False),
        sa.Column("program_version_id", sa.Integer(), nullable=True),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        _references("campaigns", "program_version_id", "program_versions", ondelete=None),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
        sa.UniqueConstraint("name", name=op.f("uq_campaigns_name")),
    )

    op.create_table(
        "campaign_runs",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("run_key", sa.String(length=128), nullable=False),
        sa.Column("occasion", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("due_at", UTC_TIME, nullable=False),
        sa.Column("planned_at", UTC_TIME, nullable=True),
        sa.Column("requested_by", sa.String(length=255), nullable=True),
        _count("targeted"),
        _count("queued"),
        _count("held"),
        _count("control"),
        _count("excluded"),
        sa.Column("outcomes", JSON_DOC, nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        _references("campaign_runs", "campaign_id", "campaigns"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_runs")),
        sa.UniqueConstraint(
            "campaign_id", "run_key", name=op.f("uq_campaign_runs_campaign_id_run_key")
        ),
    )
    op.create_index(op.f("ix_campaign_runs_due_at"), "campaign_runs", ["due_at"])

    op.create_table(
        "outbox",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("run_id", BIG_ID, nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", BIG_ID, nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("variant", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("due_at", UTC_TIME, nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        _references("outbox", "run_id", "campaign_runs"),
        _references("outbox", "campaign_id", "campaigns"),
        _references("outbox", "customer_id", "customers"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("run_id", "customer_id", name=op.f("uq_outbox_run_id_customer_id")),
    )
    op.create_index(op.f("ix_outbox_customer_id_due_at"), "outbox", ["customer_id", "due_at"])
    op.create_index(op.f("ix_outbox_state_due_at"), "outbox", ["state", "due_at"])

    op.create_table(
        "campaign_contacts",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", BIG_ID, nullable=False),
        sa.Column("last_due_at", UTC_TIME, nullable=False),
        sa.Column("times", sa.Integer(), nullable=False),
        _references("campaign_contacts", "campaign_id", "campaigns"),
        _references("campaign_contacts", "customer_id", "customers"),
        sa.PrimaryKeyConstraint("campaign_id", "customer_id", name=op.f("pk_campaign_contacts")),
    )


def downgrade() -> None:
    for table in ("campaign_contacts", "outbox", "campaign_runs", "campaigns", "program_versions"):
        op.drop_table(table)
