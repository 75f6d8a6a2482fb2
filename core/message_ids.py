"""Message-IDs that name their outbox row, so duplicates and bounces lead back to it."""

from __future__ import annotations

import re

from core.settings import EmailSettings

_PATTERN = re.compile(r"<cadence\.(\d+)@[^>\s]+>")


def message_id_for(outbox_id: int, domain: str) -> str:
    """The Message-ID of outbox row ``outbox_id``: the same on every attempt."""
    return f"<cadence.{outbox_id}@{domain}>"


def outbox_id_of(message_id: str) -> int | None:
    """The outbox row a Message-ID (as found in a header or a bounce) names, or None."""
    match = _PATTERN.search(message_id)
    return int(match.group(1)) if match else None


def message_id_domain(email: EmailSettings) -> str:
    """The right-hand side of Cadence's Message-IDs: ``message_id_domain`` if set, else the
    sender's domain."""
    return email.message_id_domain or email.from_address.rpartition("@")[2] or "cadence.local"
