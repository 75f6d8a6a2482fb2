"""segment refresh passes: a membership revision, members indexed by customer and segment

A pass reads every customer's memberships in one index scan (the index
covers both columns), and the revision tells it when another refresh
changed a segment in the meantime.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("segments") as batch:
        batch.add_column(
            sa.Column("revision", sa.Integer(), server_default=sa.text("0"), nullable=False)
        )
    op.drop_index("ix_segment_members_customer_id", table_name="segment_members")
    op.create_index(
        "ix_segment_members_customer_id_segment_id",
        "segment_members",
        ["customer_id", "segment_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_segment_members_customer_id_segment_id", table_name="segment_members")
    op.create_index("ix_segment_members_customer_id", "segment_members", ["customer_id"])
    with op.batch_alter_table("segments") as batch:
        batch.drop_column("revision")
