"""What an SMTP server's reply means for one message: sent, try again, or failed for good.

2xx is sent. 4xx is temporary: try again, after the delay the reply
suggests when it names one ("try again in 30 seconds"). 5xx is permanent,
and when it is about the recipient's mailbox (RFC 5321: 550, 551, 553,
554 at RCPT; 550 or 554 after DATA) it is a hard bounce that suppresses
the address.
"""

from __future__ import annotations

import re
from typing import Literal

from channels.base import SendOutcome

Stage = Literal["mail", "rcpt", "data"]
"""Which command the server answered: MAIL FROM, RCPT TO, or the end of DATA."""

_HARD_BOUNCES: dict[Stage, frozenset[int]] = {
    "mail": frozenset(),
    "rcpt": frozenset({550, 551, 553, 554}),
    "data": frozenset({550, 554}),
}
_HINT = re.compile(
    r"\b(?:in|after)\s+(\d+(?:\.\d+)?)\s*"
    r"(seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h)?\b(?!\.\d)",
    re.IGNORECASE,
)
_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def retry_hint(text: str) -> float | None:
    """The wait in seconds a reply asks for ("try again in 5 minutes": 300), or None."""
    match = _HINT.search(text)
    if match is None:
        return None
    unit = (match.group(2) or "s")[0].lower()
    return float(match.group(1)) * _UNIT_SECONDS[unit]


def reply_outcome(outbox_id: int, code: int, text: str, stage: Stage) -> SendOutcome:
    """The outcome of a message the server answered with ``code`` and ``text``."""
    reason = f"{code} {text}".strip()
    if 200 <= code < 300:
        return SendOutcome.sent(outbox_id)
    if code >= 500:
        return SendOutcome.failed(outbox_id, reason, suppress=code in _HARD_BOUNCES[stage])
    # 4xx, and anything out of the protocol (aiosmtplib reports -1 for unreadable replies).
    return SendOutcome.retry(outbox_id, reason, retry_hint(text))
