"""One-click unsubscribe (RFC 8058) and its confirmation page: ``/u/{token}``.

``GET`` only shows what would be unsubscribed, with a button: mail scanners
fetch every link in a message, so a GET must change nothing. ``POST`` (the
mail client's one-click request, body ``List-Unsubscribe=One-Click``, or the
page's button) withdraws the consent, suppresses the address, cancels the
customer's marketing still waiting on that channel and records an
``unsubscribed`` event. The signed token is what authorises it, so any POST
body is accepted, and a second POST changes nothing.
"""

from __future__ import annotations

import logging

from sqlalchemy import literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core import clock, event_types
from core.api.context import RouteGroup
from core.api.pages import html_response, page
from core.api.records import record_message_event
from core.errors import CampaignError
from core.links import LinkClaims
from core.models import Customer, OutboxMessage
from core.policy.channels import channel_rule
from core.suppressions import unsubscribe_customer

logger = logging.getLogger(__name__)

_CANCELLABLE = ("queued", "retry")
"""Outbox states of a message that is not being sent yet; ``sending`` is past stopping."""
_CHANNEL_NAMES = {"email": "e-mails", "file": "e-mails", "sms": "text messages"}
_ONE_CLICK = {"List-Unsubscribe": "One-Click"}


class UnsubscribeRoutes(RouteGroup):
    """``GET`` and ``POST /u/{token}``."""

    @property
    def routes(self) -> list[Route]:
        return [
            Route("/u/{token}", self.confirmation, methods=["GET"]),
            Route("/u/{token}", self.unsubscribe, methods=["POST"]),
        ]

    async def confirmation(self, request: Request) -> Response:
        claims, channel = await self._claims(request)
        async with self._context.store.reading() as session:
            address = await _address_of(session, claims.customer_id, channel)
        brand = self._context.settings.templates.brand
        what = f"{brand}'s marketing {_CHANNEL_NAMES.get(channel, 'messages')}"
        question = f"Unsubscribe {address} from {what}?" if address else f"Unsubscribe from {what}?"
        html = page(
            "Unsubscribe",
            question,
            "Messages you asked for, such as receipts, still reach you.",
            button="Unsubscribe",
            fields=_ONE_CLICK,
        )
        return html_response(html)

    async def unsubscribe(self, request: Request) -> Response:
        claims, channel = await self._claims(request)
        await request.body()  # read, so its size is checked; the token is the authority
        now = clock.now()
        async with self._context.store.transaction() as session:
            address = await _address_of(session, claims.customer_id, channel)
            changed = await unsubscribe_customer(
                session, claims.customer_id, channel, source="one_click", now=now
            )
            cancelled = await _cancel_waiting_marketing(session, claims.customer_id, channel)
            if changed:
                await record_message_event(
                    session,
                    claims.customer_id,
                    claims.outbox_id,
                    event_types.UNSUBSCRIBED,
                    now,
                    source="one_click",
                    extra={"channel": channel},
                )
        if changed or cancelled:
            logger.info(
                "customer %d unsubscribed from %s; %d waiting messages cancelled",
                claims.customer_id,
                channel,
                cancelled,
            )
        brand = self._context.settings.templates.brand
        what = f"marketing {_CHANNEL_NAMES.get(channel, 'messages')} from {brand}"
        done = f"{address} gets no more {what}." if address else f"You get no more {what}."
        return html_response(page("You are unsubscribed", done))

    async def _claims(self, request: Request) -> tuple[LinkClaims, str]:
        claims = await self._context.verify(request.path_params["token"], "unsubscribe")
        channel = claims.detail or ""
        try:
            channel_rule(channel)
        except CampaignError:
            raise HTTPException(400, "this unsubscribe link names no channel we know") from None
        return claims, channel


async def _address_of(session: AsyncSession, customer_id: int, channel: str) -> str | None:
    """The customer's address on ``channel`` ("" for channels without one); 404 when the
    customer no longer exists."""
    rule = channel_rule(channel)
    address = rule.address if rule.address is not None else literal("")
    found = (
        await session.execute(select(Customer.id, address).where(Customer.id == customer_id))
    ).first()
    if found is None:
        raise HTTPException(404, "we have no subscriber for this link any more")
    return found[1] or None


async def _cancel_waiting_marketing(session: AsyncSession, customer_id: int, channel: str) -> int:
    """Cancel the customer's marketing on ``channel`` not sent yet; returns how many."""
    cancelled = await session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.customer_id == customer_id,
            OutboxMessage.channel == channel,
            OutboxMessage.category == "marketing",
            OutboxMessage.state.in_(_CANCELLABLE),
        )
        .values(state="cancelled", error="unsubscribed", next_attempt_at=None)
        .returning(OutboxMessage.id)
    )
    return len(cancelled.all())
