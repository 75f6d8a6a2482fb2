"""send time and channel preference: each customer's best local hour and best channel

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-09
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# See core.db.types for why each type differs between the dialects.
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC_TIME = sa.DateTime().with_variant(sa.BigInteger(), "sqlite")

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _customer(table: str) -> list[sa.schema.SchemaItem]:
    return [
        sa.Column("customer_id", BIG_ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f(f"fk_{table}_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("customer_id", name=op.f(f"pk_{table}")),
    ]


def upgrade() -> None:
    op.create_table(
        "customer_send_times",
        *_customer("customer_send_times"),
        sa.Column("hour", sa.SmallInteger(), nullable=False),
        sa.Column("share", sa.Float(), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("refreshed_at", UTC_TIME, nullable=False),
    )
    op.create_table(
        "customer_channels",
        *_customer("customer_channels"),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("response_rate", sa.Float(), nullable=False),
        sa.Column("messages", sa.Integer(), nullable=False),
        sa.Column("refreshed_at", UTC_TIME, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("customer_channels")
    op.drop_table("customer_send_times")
