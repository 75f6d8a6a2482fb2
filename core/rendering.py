"""Claimed outbox messages made into channel-ready messages: context, links, templates.

:class:`MessageRenderer` is the CPU-bound half of delivery, kept apart from
the worker's loop of claiming, sending and recording. (Rendering in a
process of its own was measured too: pickling the batches ate the gain.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from channels.base import OutgoingMessage
from core.links import LinkSigner
from core.message_ids import message_id_for
from core.outbox import ClaimedMessage, Settled
from core.policy import Outcome
from core.policy.channels import channel_rule
from core.templates import TemplateRenderError, Templates, message_context

_CANCELLED_BECAUSE = {
    Outcome.NO_ADDRESS: "no address for the channel any more",
    Outcome.SUPPRESSED: "the address is suppressed (hard bounce, complaint or erasure)",
    Outcome.UNSUBSCRIBED: "unsubscribed after the run was planned",
    Outcome.NO_CONSENT: "consent withdrawn after the run was planned",
}


@dataclass(frozen=True, slots=True)
class CustomerFacts:
    """What the templates and the send-time policy check need of one customer."""

    customer: dict[str, Any]
    address: str | None
    stage: str | None
    scores: dict[str, Any]
    blocked_marketing: int
    """Why marketing may not reach the customer now (an :class:`Outcome`), or 0."""
    blocked_transactional: int


@dataclass(frozen=True, slots=True)
class RenderJob:
    """What the renderer needs to know of one batch to render its messages."""

    channel: str
    facts: Mapping[int, CustomerFacts]
    recommendations: Mapping[int, list[dict[str, Any]]]
    campaigns: Mapping[int, str]
    now: datetime


@dataclass(frozen=True, slots=True)
class RendererSetup:
    """What a :class:`MessageRenderer` renders with."""

    templates: Templates
    link_key: bytes
    public_url: str
    link_ttl: timedelta
    brand: str
    message_id_domain: str
    unsubscribe_mailto: str | None


class MessageRenderer:
    """Renders claimed messages; a customer who said no since planning, or a template
    that fails for one customer, settles that message only."""

    def __init__(self, setup: RendererSetup) -> None:
        self.setup = setup
        self.templates = setup.templates
        self.signer = LinkSigner(setup.link_key, setup.public_url, setup.link_ttl)

    def render(self, job: RenderJob, message: ClaimedMessage) -> OutgoingMessage | Settled:
        facts = job.facts.get(message.customer_id)
        if facts is None:
            return Settled(message.id, "cancelled", "the customer no longer exists")
        marketing = message.category == "marketing"
        blocked = facts.blocked_marketing if marketing else facts.blocked_transactional
        if blocked:
            return Settled(message.id, "cancelled", _CANCELLED_BECAUSE[Outcome(blocked)])
        signer, channel, now = self.signer, job.channel, job.now
        campaign = job.campaigns.get(message.campaign_id, "")
        unsubscribe = (
            signer.unsubscribe_url(message.id, message.customer_id, channel, now)
            if marketing and channel_rule(channel).suppression_channel is not None
            else None
        )

        tracked: dict[str, str] = {}

        def link(url: str) -> str:
            # The text and the HTML part name the same addresses: one signed link each.
            address = tracked.get(url)
            if address is None:
                address = tracked[url] = signer.click_url(
                    message.id, message.customer_id, str(url), now
                )
            return address

        context = message_context(
            customer=facts.customer,
            stage=facts.stage,
            scores=facts.scores,
            campaign=campaign,
            variant=message.variant,
            brand=self.setup.brand,
            unsubscribe_url=unsubscribe,
            open_url=signer.open_url(message.id, message.customer_id, now),
            link=link,
            recommendations=job.recommendations.get(message.customer_id, []),
        )
        try:
            rendered = self.templates.render(message.variant, channel, context)
        except TemplateRenderError as error:
            return Settled(message.id, "failed", str(error))
        return OutgoingMessage(
            outbox_id=message.id,
            message_id=message_id_for(message.id, self.setup.message_id_domain),
            customer_id=message.customer_id,
            customer_ref=facts.customer["id"],
            address=facts.address,
            name=facts.customer["name"],
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            campaign=campaign,
            variant=message.variant,
            category="marketing" if marketing else "transactional",
            unsubscribe_url=unsubscribe,
            unsubscribe_mailto=self.setup.unsubscribe_mailto if unsubscribe else None,
        )
