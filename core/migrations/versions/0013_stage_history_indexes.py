"""stage history indexes: a customer's moves and the moves after a moment, from the index alone

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index(op.f("ix_stage_transitions_customer_id"), table_name="stage_transitions")
    op.create_index(
        op.f("ix_stage_transitions_customer_id_at_from_stage_to_stage"),
        "stage_transitions",
        ["customer_id", "at", "from_stage", "to_stage"],
    )
    op.drop_index(op.f("ix_stage_transitions_at"), table_name="stage_transitions")
    op.create_index(
        op.f("ix_stage_transitions_at_from_stage_to_stage_customer_id"),
        "stage_transitions",
        ["at", "from_stage", "to_stage", "customer_id"],
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_stage_transitions_at_from_stage_to_stage_customer_id"),
        table_name="stage_transitions",
    )
    op.create_index(op.f("ix_stage_transitions_at"), "stage_transitions", ["at"])
    op.drop_index(
        op.f("ix_stage_transitions_customer_id_at_from_stage_to_stage"),
        table_name="stage_transitions",
    )
    op.create_index(op.f("ix_stage_transitions_customer_id"), "stage_transitions", ["customer_id"])
