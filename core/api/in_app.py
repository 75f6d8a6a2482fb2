"""In-app messages for the product to show: ``/v1/customers/{external_id}/messages``.

The product's backend (bearer token) lists a customer's messages, newest
first, each with a ``read`` flag, and marks one read when the customer has
seen it; the first read is recorded as the message's ``message_opened``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core import clock, event_types
from core.api.auth import require_bearer
from core.api.context import RouteGroup
from core.api.records import record_message_event
from core.models import Customer, InAppMessage

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class InAppRoutes(RouteGroup):
    """``GET .../messages`` and ``POST .../messages/{id}/read``."""

    @property
    def routes(self) -> list[Route]:
        base = "/v1/customers/{external_id}/messages"
        return [
            Route(base, self.messages, methods=["GET"]),
            Route(base + "/{message_id:int}/read", self.read, methods=["POST"]),
        ]

    async def messages(self, request: Request) -> Response:
        """``?limit=N`` (default 50, at most 200) and ``?unread=true`` (unread ones only)."""
        require_bearer(request, self._context.settings.api)
        limit = _limit(request.query_params.get("limit"))
        unread_only = request.query_params.get("unread", "").lower() in ("1", "true", "yes")
        external_id = request.path_params["external_id"]
        async with self._context.store.reading() as session:
            customer_id = await _customer_id(session, external_id)
            mine = InAppMessage.customer_id == customer_id
            query = select(InAppMessage).where(mine)
            if unread_only:
                query = query.where(InAppMessage.read_at.is_(None))
            rows = (
                await session.execute(
                    query.order_by(InAppMessage.created_at.desc(), InAppMessage.id.desc()).limit(
                        limit
                    )
                )
            ).scalars()
            messages = [_as_json(row) for row in rows]
            unread = await session.execute(
                select(func.count()).where(mine, InAppMessage.read_at.is_(None))
            )
        return JSONResponse(
            {"customer": external_id, "unread": unread.scalar_one(), "messages": messages}
        )

    async def read(self, request: Request) -> Response:
        require_bearer(request, self._context.settings.api)
        external_id = request.path_params["external_id"]
        message_id: int = request.path_params["message_id"]
        now = clock.now()
        async with self._context.store.transaction() as session:
            customer_id = await _customer_id(session, external_id)
            found = (
                await session.execute(
                    select(InAppMessage.outbox_id, InAppMessage.read_at).where(
                        InAppMessage.id == message_id, InAppMessage.customer_id == customer_id
                    )
                )
            ).first()
            if found is None:
                raise HTTPException(404, f"customer {external_id} has no message {message_id}")
            outbox_id, read_at = found
            if read_at is None:
                read_at = now
                await session.execute(
                    update(InAppMessage).where(InAppMessage.id == message_id).values(read_at=now)
                )
                await record_message_event(
                    session,
                    customer_id,
                    outbox_id,
                    event_types.MESSAGE_OPENED,
                    now,
                    source="in_app",
                )
        return JSONResponse({"id": message_id, "read": True, "read_at": read_at.isoformat()})


def _limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_LIMIT
    if not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise HTTPException(400, f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return int(value)


async def _customer_id(session: AsyncSession, external_id: str) -> int:
    found = await session.execute(select(Customer.id).where(Customer.external_id == external_id))
    customer_id = found.scalar_one_or_none()
    if customer_id is None:
        raise HTTPException(404, f"no customer with external_id {external_id!r}")
    return customer_id


def _as_json(message: InAppMessage) -> dict[str, Any]:
    return {
        "id": message.id,
        "campaign": message.campaign,
        "title": message.title,
        "body": message.body,
        "html": message.html,
        "created_at": message.created_at.isoformat(),
        "read": message.read_at is not None,
        "read_at": message.read_at.isoformat() if message.read_at else None,
    }
