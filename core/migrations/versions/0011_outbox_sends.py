"""outbox sends: the per-send durable record, folded into the outbox a batch at a time

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-11
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# See core.db.types for why each type differs between the dialects.
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC_TIME = sa.DateTime().with_variant(sa.BigInteger(), "sqlite")

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "outbox_sends",
        sa.Column("outbox_id", BIG_ID, nullable=False),
        sa.Column("sent_at", UTC_TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["outbox_id"],
            ["outbox.id"],
            name=op.f("fk_outbox_sends_outbox_id_outbox"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("outbox_id", name=op.f("pk_outbox_sends")),
    )


def downgrade() -> None:
    # Sends not yet folded into their outbox rows are folded before the table goes.
    op.execute(
        "UPDATE outbox SET state = 'sent', next_attempt_at = NULL, lease_owner = NULL, "
        "error = NULL, sent_at = (SELECT s.sent_at FROM outbox_sends AS s "
        "WHERE s.outbox_id = outbox.id) "
        "WHERE id IN (SELECT outbox_id FROM outbox_sends)"
    )
    op.drop_table("outbox_sends")
