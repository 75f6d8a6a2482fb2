"""stored figures: campaign uplifts and daily message tallies, written by the scheduler

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# See core.db.types for why each type differs between the dialects.
UTC_TIME = sa.DateTime().with_variant(sa.BigInteger(), "sqlite")

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "campaign_uplifts",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("verdict", sa.String(length=64), nullable=False),
        sa.Column("uplift", sa.Float(), nullable=True),
        sa.Column("uplift_low", sa.Float(), nullable=True),
        sa.Column("uplift_high", sa.Float(), nullable=True),
        sa.Column("treated", sa.Integer(), nullable=False),
        sa.Column("control", sa.Integer(), nullable=False),
        sa.Column("next_close", UTC_TIME, nullable=True),
        sa.Column("computed_at", UTC_TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_uplifts_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("campaign_id", name=op.f("pk_campaign_uplifts")),
    )
    op.create_table(
        "message_tallies",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("messages", sa.Integer(), nullable=False),
        sa.Column("computed_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("day", "channel", "state", name=op.f("pk_message_tallies")),
    )


def downgrade() -> None:
    op.drop_table("message_tallies")
    op.drop_table("campaign_uplifts")
