"""Events the engine writes about its own messages: opened, clicked, bounced, unsubscribed.

They are stored through :func:`core.db.bulk.store_events` like imported
events, so the rollups (``last_open_at``, ``last_click_at``) stay current.
An event with an idempotency key is stored once however often its report
arrives at the same time (a provider retrying a webhook, a mailbox ingested
twice); without one, its content and time make it unique.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from core.clock import as_utc
from core.db.bulk import EventRow
from core.db.types import epoch_micros
from core.ingest.events import dedupe_key


def message_event(
    customer_id: int,
    kind: str,
    at: datetime,
    properties: Mapping[str, Any],
    *,
    source: str,
    idempotency_key: str | None = None,
) -> EventRow:
    """The row :func:`~core.db.bulk.store_events` takes for one event about a message."""
    document = json.dumps(properties, sort_keys=True, separators=(",", ":"))
    micros = epoch_micros(as_utc(at).replace(tzinfo=None))
    dedupe = (
        dedupe_key("key", idempotency_key)
        if idempotency_key
        else dedupe_key(str(customer_id), kind, str(micros), document)
    )
    return (customer_id, kind, micros, None, document, source, idempotency_key, dedupe)
