"""Where each channel finds a customer's address and consent, and which suppressions apply."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, Integer, and_, case, literal, or_, select

from core.errors import CampaignError
from core.models import Customer, Suppression
from core.policy.outcomes import Outcome


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


def channel_status(channel: str, has_suppressions: bool = True) -> ColumnElement[int]:
    """Why a customer (a row of ``customers`` in the query) cannot be sent marketing on
    ``channel``, as an :class:`Outcome`, or 0. ``has_suppressions`` False leaves out the
    suppression lookup when the caller knows the table is empty."""
    rule = channel_rule(channel)
    whens: list[tuple[ColumnElement[bool], int]] = []
    if rule.address is not None:
        whens.append((or_(rule.address.is_(None), rule.address == ""), Outcome.NO_ADDRESS))
        if has_suppressions and rule.suppression_channel is not None:
            suppressions = Suppression.__table__.c
            reason = (
                select(suppressions.reason)
                .where(
                    suppressions.channel == rule.suppression_channel,
                    suppressions.address == rule.address,
                )
                .scalar_subquery()
            )
            unsubscribed = reason.in_(sorted(UNSUBSCRIBE_REASONS))
            whens.append((and_(reason.is_not(None), ~unsubscribed), Outcome.SUPPRESSED))
            whens.append((unsubscribed, Outcome.UNSUBSCRIBED))
    if rule.consent is not None:
        whens.append((rule.consent.is_not(True), Outcome.NO_CONSENT))
    if not whens:
        return literal(0, Integer)
    return case(*whens, else_=0)


def blocking_status(status: ColumnElement[int], *, marketing: bool) -> ColumnElement[int]:
    """The part of a :func:`channel_status` that stops a message of this category: all of
    it for marketing; for transactional messages only a missing address or a hard
    suppression (an unsubscribe or missing consent does not stop a receipt)."""
    if marketing:
        return status
    return case((status.in_([Outcome.NO_ADDRESS, Outcome.SUPPRESSED]), status), else_=0)
