"""The in-app channel: messages kept in the store for the product to show.

Each message becomes one ``in_app_messages`` row (title = subject, body =
text), which the HTTP API serves per customer. A batch is one INSERT; a
message stored before (a retry after a crash) is left as it is, so a
replay never shows a customer the same tip twice.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.exc import DBAPIError

from channels.base import OutgoingMessage, Report, SendOutcome
from channels.outcomes import Outcomes, error_text
from core import clock
from core.db import Store
from core.db.dialect import upsert
from core.models import InAppMessage


class InAppChannel:
    """Stores messages as in-app messages in ``store``."""

    name = "in_app"

    def __init__(self, store: Store) -> None:
        self.store = store

    async def open(self) -> None:
        """Nothing to open: the store is already there."""

    async def send(
        self, batch: Sequence[OutgoingMessage], report: Report | None = None
    ) -> list[SendOutcome]:
        outcomes = Outcomes(report)
        if not batch:
            return outcomes.all
        now = clock.now()
        rows = [
            {
                "outbox_id": message.outbox_id,
                "customer_id": message.customer_id,
                "campaign": message.campaign,
                "title": message.subject,
                "body": message.text,
                "html": message.html,
                "created_at": now,
            }
            for message in batch
        ]
        insert = upsert(self.store.backend, InAppMessage.__table__).on_conflict_do_nothing(
            index_elements=["outbox_id"]
        )
        try:
            async with self.store.transaction() as session:
                await session.execute(insert, rows)
        except (DBAPIError, OSError) as exc:
            reason = f"cannot store in-app messages: {error_text(exc)}"
            for message in batch:
                await outcomes.add(SendOutcome.retry(message.outbox_id, reason))
            return outcomes.all
        for message in batch:
            await outcomes.add(SendOutcome.sent(message.outbox_id))
        return outcomes.all

    async def close(self) -> None:
        """Nothing to let go of: the store belongs to the caller."""
