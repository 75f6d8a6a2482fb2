"""kpi snapshots: each day's stage and program KPIs, for trends; sends by customer and time

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-09
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# See core.db.types for why each type differs between the dialects.
UTC_TIME = sa.DateTime().with_variant(sa.BigInteger(), "sqlite")

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "kpi_snapshots",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("stage", sa.String(length=64), nullable=False),
        sa.Column("kpi", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("target", sa.Float(), nullable=True),
        sa.Column("window_days", sa.Integer(), nullable=False),
        sa.Column("computed_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("day", "stage", "kpi", name=op.f("pk_kpi_snapshots")),
    )
    op.create_index(op.f("ix_outbox_customer_id_sent_at"), "outbox", ["customer_id", "sent_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_outbox_customer_id_sent_at"), table_name="outbox")
    op.drop_table("kpi_snapshots")
