"""delivery: outbox leases, attempts and results; in-app messages; recommendations; keys

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# See core.db.types for why each type differs between the dialects.
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC_TIME = sa.DateTime().with_variant(sa.BigInteger(), "sqlite")

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as outbox:
        outbox.add_column(
            sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False)
        )
        outbox.add_column(sa.Column("next_attempt_at", UTC_TIME, nullable=True))
        outbox.add_column(sa.Column("lease_owner", sa.String(length=64), nullable=True))
        outbox.add_column(sa.Column("sent_at", UTC_TIME, nullable=True))
        outbox.add_column(sa.Column("error", sa.Text(), nullable=True))
    op.create_index(op.f("ix_outbox_state_next_attempt_at"), "outbox", ["state", "next_attempt_at"])
    op.create_index(op.f("ix_outbox_channel_sent_at"), "outbox", ["channel", "sent_at"])

    op.create_table(
        "in_app_messages",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("outbox_id", BIG_ID, nullable=False),
        sa.Column("customer_id", BIG_ID, nullable=False),
        sa.Column("campaign", sa.String(length=128), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("html", sa.Text(), nullable=True),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("read_at", UTC_TIME, nullable=True),
        sa.ForeignKeyConstraint(
            ["outbox_id"],
            ["outbox.id"],
            name=op.f("fk_in_app_messages_outbox_id_outbox"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_in_app_messages_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_in_app_messages")),
        sa.UniqueConstraint("outbox_id", name=op.f("uq_in_app_messages_outbox_id")),
    )
    op.create_index(
        op.f("ix_in_app_messages_customer_id_created_at"),
        "in_app_messages",
        ["customer_id", "created_at"],
    )

    op.create_table(
        "recommendations",
        sa.Column("product_id", sa.String(length=128), nullable=False),
        sa.Column("recommended_id", sa.String(length=128), nullable=False),
        sa.Column("customers", sa.Integer(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("computed_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("product_id", "recommended_id", name=op.f("pk_recommendations")),
    )

    op.create_table(
        "customer_recommendations",
        sa.Column("customer_id", BIG_ID, nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.String(length=128), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_customer_recommendations_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("customer_id", "rank", name=op.f("pk_customer_recommendations")),
    )

    op.create_table(
        "signing_keys",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("secret", sa.String(length=128), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_signing_keys")),
    )


def downgrade() -> None:
    op.drop_table("signing_keys")
    op.drop_table("customer_recommendations")
    op.drop_table("recommendations")
    op.drop_index(op.f("ix_in_app_messages_customer_id_created_at"), table_name="in_app_messages")
    op.drop_table("in_app_messages")
    op.drop_index(op.f("ix_outbox_channel_sent_at"), table_name="outbox")
    op.drop_index(op.f("ix_outbox_state_next_attempt_at"), table_name="outbox")
    with op.batch_alter_table("outbox") as outbox:
        for column in ("error", "sent_at", "lease_owner", "next_attempt_at", "attempts"):
            outbox.drop_column(column)
