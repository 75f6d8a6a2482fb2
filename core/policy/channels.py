"""Where each channel finds a customer's address and consent, and which suppressions apply."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement

from core.errors import CampaignError
from core.models import Customer


@dataclass(frozen=True)
class ChannelRule:
    """How the policy reads one channel.

    ``address`` is None for channels that need none (in-app messages are shown
    to the signed-in customer); ``consent`` is None for channels whose use is
    consent enough. ``suppression_channel`` is the ``suppressions.channel``
    that blocks this channel's address.
    """

    name: str
    address: ColumnElement[str] | None
    consent: ColumnElement[bool] | None
    suppression_channel: str | None


_EMAIL = (Customer.__table__.c.email, Customer.__table__.c.consent_email, "email")

CHANNELS: dict[str, ChannelRule] = {
    rule.name: rule
    for rule in (
        ChannelRule("email", *_EMAIL),
        # The file channel writes the e-mails that would be sent (dry runs, the demo).
        ChannelRule("file", *_EMAIL),
        ChannelRule("sms", Customer.__table__.c.phone, Customer.__table__.c.consent_sms, "sms"),
        ChannelRule("in_app", None, None, None),
        ChannelRule("webhook", None, None, None),
    )
}

UNSUBSCRIBE_REASONS = frozenset({"unsubscribed"})
"""Suppression reasons that stop marketing only; every other reason stops everything."""


def channel_rule(name: str) -> ChannelRule:
    try:
        return CHANNELS[name]
    except KeyError:
        raise CampaignError(
            f"unknown channel `{name}`; channels are {', '.join(sorted(CHANNELS))}"
        ) from None
