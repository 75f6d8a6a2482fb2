"""measurement indexes: goal and purchase events by customer; both arms of a run

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-10
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        op.f("ix_events_type_customer_id_occurred_at_value"),
        "events",
        ["type", "customer_id", "occurred_at", "value"],
    )
    op.drop_index(op.f("ix_outbox_customer_id_sent_at"), table_name="outbox")
    op.create_index(
        op.f("ix_outbox_customer_id_sent_at_run_id_state"),
        "outbox",
        ["customer_id", "sent_at", "run_id", "state"],
    )
    op.create_index(
        op.f("ix_outbox_run_id_state_sent_at"), "outbox", ["run_id", "state", "sent_at"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_outbox_run_id_state_sent_at"), table_name="outbox")
    op.drop_index(op.f("ix_outbox_customer_id_sent_at_run_id_state"), table_name="outbox")
    op.create_index(op.f("ix_outbox_customer_id_sent_at"), "outbox", ["customer_id", "sent_at"])
    op.drop_index(op.f("ix_events_type_customer_id_occurred_at_value"), table_name="events")
