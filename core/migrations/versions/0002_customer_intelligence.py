"""customer intelligence: stages, scores, segments, CLV fits

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# See core.db.types for why each type differs between the dialects.
JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC_TIME = sa.DateTime().with_variant(sa.BigInteger(), "sqlite")
MONEY = sa.Numeric(precision=16, scale=2, asdecimal=False)

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _references(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column],
        [f"{target}.id"],
        name=op.f(f"fk_{table}_{column}_{target}"),
        ondelete="CASCADE",
    )


def _zero(name: str, kind: sa.types.TypeEngine[Any]) -> sa.Column[Any]:
    return sa.Column(name, kind, server_default=sa.text("0"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "customer_stages",
        sa.Column("customer_id", BIG_ID, nullable=False),
        sa.Column("stage", sa.String(length=64), nullable=True),
        sa.Column("entered_at", UTC_TIME, nullable=False),
        sa.Column("reactivated_at", UTC_TIME, nullable=True),
        _references("customer_stages", "customer_id", "customers"),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_customer_stages")),
    )
    op.create_index(op.f("ix_customer_stages_stage"), "customer_stages", ["stage"])

    op.create_table(
        "stage_transitions",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("customer_id", BIG_ID, nullable=False),
        sa.Column("from_stage", sa.String(length=64), nullable=True),
        sa.Column("to_stage", sa.String(length=64), nullable=False),
        sa.Column("at", UTC_TIME, nullable=False),
        _references("stage_transitions", "customer_id", "customers"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stage_transitions")),
    )
    op.create_index(op.f("ix_stage_transitions_customer_id"), "stage_transitions", ["customer_id"])
    op.create_index(op.f("ix_stage_transitions_at"), "stage_transitions", ["at"])

    op.create_table(
        "customer_scores",
        sa.Column("customer_id", BIG_ID, nullable=False),
        sa.Column("recency_score", sa.Integer(), nullable=True),
        sa.Column("frequency_score", sa.Integer(), nullable=True),
        sa.Column("monetary_score", sa.Integer(), nullable=True),
        sa.Column("rfm_score", sa.Integer(), nullable=True),
        _zero("engagement_score", sa.Float()),
        _zero("lead_score", sa.Float()),
        _zero("purchases_30d", sa.Integer()),
        _zero("purchases_90d", sa.Integer()),
        _zero("purchases_365d", sa.Integer()),
        _zero("revenue_90d", MONEY),
        _zero("revenue_365d", MONEY),
        sa.Column("expected_purchases_90d", sa.Float(), nullable=True),
        sa.Column("p_alive", sa.Float(), nullable=True),
        sa.Column("clv_12m", sa.Float(), nullable=True),
        sa.Column("refreshed_at", UTC_TIME, nullable=False),
        _references("customer_scores", "customer_id", "customers"),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_customer_scores")),
    )

    op.create_table(
        "segments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("stage", sa.String(length=64), nullable=True),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("tags", JSON_DOC, nullable=False),
        sa.Column("archived", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        _zero("size", sa.Integer()),
        sa.Column("refreshed_at", UTC_TIME, nullable=True),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segments")),
        sa.UniqueConstraint("name", name=op.f("uq_segments_name")),
    )

    op.create_table(
        "segment_members",
        sa.Column("segment_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", BIG_ID, nullable=False),
        sa.Column("entered_at", UTC_TIME, nullable=False),
        _references("segment_members", "segment_id", "segments"),
        _references("segment_members", "customer_id", "customers"),
        sa.PrimaryKeyConstraint("segment_id", "customer_id", name=op.f("pk_segment_members")),
    )
    op.create_index(op.f("ix_segment_members_customer_id"), "segment_members", ["customer_id"])

    op.create_table(
        "segment_changes",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("segment_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", BIG_ID, nullable=False),
        sa.Column("entered", sa.Boolean(), nullable=False),
        sa.Column("at", UTC_TIME, nullable=False),
        _references("segment_changes", "segment_id", "segments"),
        _references("segment_changes", "customer_id", "customers"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segment_changes")),
    )
    op.create_index(op.f("ix_segment_changes_at"), "segment_changes", ["at"])
    op.create_index(
        op.f("ix_segment_changes_segment_id_at"), "segment_changes", ["segment_id", "at"]
    )

    op.create_table(
        "segment_sizes",
        sa.Column("segment_id", sa.Integer(), nullable=False),
        sa.Column("at", UTC_TIME, nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("entered", sa.Integer(), nullable=False),
        sa.Column("left", sa.Integer(), nullable=False),
        _references("segment_sizes", "segment_id", "segments"),
        sa.PrimaryKeyConstraint("segment_id", "at", name=op.f("pk_segment_sizes")),
    )

    op.create_table(
        "clv_fits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("fitted_at", UTC_TIME, nullable=False),
        sa.Column("customers", sa.Integer(), nullable=False),
        sa.Column("log_likelihood", sa.Float(), nullable=False),
        sa.Column("time_unit", sa.String(length=16), nullable=False),
        sa.Column("parameters", JSON_DOC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clv_fits")),
    )
    op.create_index(op.f("ix_clv_fits_fitted_at"), "clv_fits", ["fitted_at"])


def downgrade() -> None:
    for table in (
        "clv_fits",
        "segment_sizes",
        "segment_changes",
        "segment_members",
        "segments",
        "customer_scores",
        "stage_transitions",
        "customer_stages",
    ):
        op.drop_table(table)
