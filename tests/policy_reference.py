"""The contact policy in plain Python, one customer at a time: the planner tests' oracle.

It states the policy of :mod:`core.policy` as directly as possible, so the
set-based planner can be checked against it example by example.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.planner.control import control_bucket, control_threshold
from core.policy import Outcome, QuietHours
from core.policy.channels import UNSUBSCRIBE_REASONS

DAY = timedelta(days=1)
WEEK = timedelta(days=7)


@dataclass(frozen=True)
class Customer:
    id: int
    email: str | None
    consent_email: bool | None
    time_zone: str | None
    suppression: str | None
    """The reason the customer's address is suppressed, if it is."""


@dataclass(frozen=True)
class Campaign:
    name: str
    audience: frozenset[int]
    priority: int
    marketing: bool
    control: float
    cooldown: timedelta | None
    variants: tuple[str, ...]


@dataclass(frozen=True)
class Message:
    campaign: str
    customer: int
    due: datetime
    marketing: bool
    state: str
    variant: str


@dataclass
class History:
    """What earlier ticks planned: the outbox and each campaign's contact history."""

    messages: list[Message] = field(default_factory=list)
    contacts: dict[tuple[str, int], tuple[datetime, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class Expected:
    outcomes: dict[str, dict[int, Outcome]]
    lost_to: dict[str, dict[str, int]]
    messages: list[Message]


def plan(
    customers: dict[int, Customer],
    campaigns: list[Campaign],
    history: History,
    *,
    max_per_day: int,
    max_per_week: int,
    quiet: QuietHours | None,
    zone: ZoneInfo,
    now: datetime,
) -> Expected:
    """One tick of ``campaigns`` at ``now``; appends what it plans to ``history``."""
    ordered = sorted(campaigns, key=lambda campaign: (-campaign.priority, campaign.name))
    outcomes: dict[str, dict[int, Outcome]] = {campaign.name: {} for campaign in ordered}
    lost_to: dict[str, dict[str, int]] = {campaign.name: {} for campaign in ordered}
    planned: list[Message] = []
    for customer in customers.values():
        due = _due(customer, quiet, zone, now)
        remaining = min(
            max_per_day - _used(history, customer.id, due, DAY),
            max_per_week - _used(history, customer.id, due, WEEK),
        )
        rank, first = 0, None
        for campaign in ordered:
            if customer.id not in campaign.audience:
                continue
            outcome = _exclusion(customer, campaign, history, now)
            if outcome is None and campaign.marketing:
                rank += 1
                first = first or campaign.name
                if rank > remaining:
                    outcome = Outcome.CAPPED if remaining <= 0 else Outcome.LOST
                    if outcome is Outcome.LOST:
                        lost_to[campaign.name][first] = lost_to[campaign.name].get(first, 0) + 1
            if outcome is None:
                bucket = control_bucket(campaign.name, customer.id)
                if bucket < control_threshold(campaign.control):
                    outcome = Outcome.CONTROL
                elif campaign.marketing and due > now:
                    outcome = Outcome.HELD
                else:
                    outcome = Outcome.QUEUED
            outcomes[campaign.name][customer.id] = outcome
            if outcome.planned:
                when = due if campaign.marketing else now
                last = history.contacts.get((campaign.name, customer.id))
                times = 0 if last is None else last[1]
                state = "control" if outcome is Outcome.CONTROL else "queued"
                variant = campaign.variants[times % len(campaign.variants)]
                planned.append(
                    Message(campaign.name, customer.id, when, campaign.marketing, state, variant)
                )
    for message in planned:
        key = (message.campaign, message.customer)
        times = history.contacts.get(key, (message.due, 0))[1]
        history.contacts[key] = (message.due, times + 1)
    history.messages.extend(planned)
    return Expected(outcomes, lost_to, planned)


def _due(customer: Customer, quiet: QuietHours | None, zone: ZoneInfo, now: datetime) -> datetime:
    own = zone
    if customer.time_zone:
        try:
            own = ZoneInfo(customer.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            own = zone
    return (quiet.release(now, own) if quiet else None) or now


def _used(history: History, customer: int, due: datetime, window: timedelta) -> int:
    return sum(
        1
        for message in history.messages
        if message.customer == customer
        and message.marketing
        and due - window < message.due < due + window
    )


def _exclusion(
    customer: Customer, campaign: Campaign, history: History, now: datetime
) -> Outcome | None:
    if not customer.email:
        return Outcome.NO_ADDRESS
    reason = customer.suppression
    if reason is not None and reason not in UNSUBSCRIBE_REASONS:
        return Outcome.SUPPRESSED
    if campaign.marketing:
        if reason is not None:
            return Outcome.UNSUBSCRIBED
        if customer.consent_email is not True:
            return Outcome.NO_CONSENT
    last = history.contacts.get((campaign.name, customer.id))
    if campaign.cooldown is not None and last is not None and last[0] > now - campaign.cooldown:
        return Outcome.COOLDOWN
    return None
