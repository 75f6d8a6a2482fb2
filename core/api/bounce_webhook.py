"""``POST /v1/bounces``: bounces and complaints from e-mail providers' webhooks.

Bearer-token authenticated (``api.token``). The documented shape::

    {"events": [
        {"type": "bounce", "email": "bob@example.com", "bounce_type": "hard",
         "message_id": "<cadence.42@news.example>", "reason": "550 5.1.1 user unknown",
         "status": "5.1.1", "occurred_at": "2026-11-23T10:00:00Z"},
        {"type": "complaint", "email": "carol@example.com"}
    ]}

``type`` and ``email`` are required, ``bounce_type`` (``hard`` or ``soft``)
too for bounces; the rest is optional. A body that breaks these rules is
refused whole (400), so nothing of it is recorded. Two providers' own shapes
are read as they come: Amazon SES notifications (``notificationType`` or
``eventType`` ``Bounce``/``Complaint``, bare or inside an SNS envelope) and
SendGrid's event list (``bounce``, ``dropped`` for a bounced or invalid
address, ``spamreport``); their other events are ignored. Everything is
recorded by :func:`core.bounces.record_bounces`, as a bounce mailbox is.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core import clock
from core.api.auth import require_bearer
from core.api.context import RouteGroup, read_json
from core.bounces import BounceKind, BounceReport, clean_address, record_bounces
from core.errors import CadenceError

logger = logging.getLogger(__name__)

_MAX_TEXT = 1000
_SHAPES = (
    'send {"events": [{"type": "bounce" or "complaint", "email": ..., '
    '"bounce_type": "hard" or "soft", ...}]}, an SES notification or a SendGrid event list'
)


class PayloadError(ValueError):
    """A webhook body that is not one of the shapes read here; the message says why."""


class BounceWebhookRoutes(RouteGroup):
    """``POST /v1/bounces``."""

    @property
    def routes(self) -> list[Route]:
        return [Route("/v1/bounces", self.receive, methods=["POST"])]

    async def receive(self, request: Request) -> Response:
        require_bearer(request, self._context.settings.api)
        try:
            reports = reports_from_payload(await read_json(request))
        except PayloadError as exc:
            raise HTTPException(400, str(exc)) from None
        async with self._context.store.transaction() as session:
            tally = await record_bounces(session, reports, source="webhook", now=clock.now())
        logger.info(
            "bounce webhook: %d hard, %d soft, %d complaints, %d addresses suppressed",
            tally.hard,
            tally.soft,
            tally.complaints,
            tally.suppressed,
        )
        return JSONResponse(
            {
                "received": len(reports),
                "hard": tally.hard,
                "soft": tally.soft,
                "complaints": tally.complaints,
                "matched": tally.matched,
                "suppressed": tally.suppressed,
            }
        )


def reports_from_payload(payload: Any) -> list[BounceReport]:
    """The bounce and complaint reports in a webhook body (see the module's docstring)."""
    if isinstance(payload, list):
        return list(_sendgrid(payload))
    if not isinstance(payload, dict):
        raise PayloadError(f"the body is not a bounce report: {_SHAPES}")
    if "events" in payload:
        return list(_generic(payload["events"]))
    envelope = payload.get("Type")
    if envelope == "SubscriptionConfirmation":
        raise PayloadError(
            "this is an SNS subscription confirmation: confirm the subscription by opening "
            "its SubscribeURL once (Cadence fetches no URL it is sent)"
        )
    if envelope == "Notification" and isinstance(payload.get("Message"), str):
        try:
            payload = json.loads(payload["Message"])
        except json.JSONDecodeError:
            raise PayloadError("the SNS notification's Message is not JSON") from None
    if isinstance(payload, dict) and ("notificationType" in payload or "eventType" in payload):
        return list(_ses(payload))
    raise PayloadError(f"the body is not a bounce report: {_SHAPES}")


def _generic(events: Any) -> Iterator[BounceReport]:
    if not isinstance(events, list):
        raise PayloadError('"events" must be a list')
    for index, item in enumerate(events):
        where = f"events[{index}]"
        if not isinstance(item, dict):
            raise PayloadError(f"{where} must be an object")
        kind: BounceKind
        if item.get("type") == "complaint":
            kind = "complaint"
        elif item.get("type") == "bounce":
            bounce_type = item.get("bounce_type")
            if bounce_type not in ("hard", "soft"):
                raise PayloadError(f'{where}.bounce_type must be "hard" or "soft"')
            kind = "hard" if bounce_type == "hard" else "soft"
        else:
            raise PayloadError(f'{where}.type must be "bounce" or "complaint"')
        address = clean_address(item["email"]) if isinstance(item.get("email"), str) else None
        if address is None:
            raise PayloadError(f"{where}.email must be an e-mail address")
        occurred_at = None
        if item.get("occurred_at") is not None:
            try:
                occurred_at = clock.parse_moment(str(item["occurred_at"]))
            except CadenceError as exc:
                raise PayloadError(f"{where}.occurred_at: {exc}") from None
        yield _report(kind, address, item, "message_id", occurred_at)


def _ses(notification: dict[str, Any]) -> Iterator[BounceReport]:
    kind = notification.get("notificationType") or notification.get("eventType")
    mail = _object(notification.get("mail"))
    message_id = _ses_message_id(mail)
    if kind == "Bounce":
        bounce = _object(notification.get("bounce"))
        hard = bounce.get("bounceType") == "Permanent"
        at = _iso_moment(bounce.get("timestamp"))
        for recipient in _objects(bounce.get("bouncedRecipients")):
            address = _address(recipient.get("emailAddress"))
            if address is not None:
                yield BounceReport(
                    "hard" if hard else "soft",
                    address,
                    message_id,
                    _text(recipient.get("status")),
                    _text(recipient.get("diagnosticCode")),
                    at,
                )
    elif kind == "Complaint":
        complaint = _object(notification.get("complaint"))
        at = _iso_moment(complaint.get("timestamp"))
        feedback = _text(complaint.get("complaintFeedbackType")) or "abuse"
        for recipient in _objects(complaint.get("complainedRecipients")):
            address = _address(recipient.get("emailAddress"))
            if address is not None:
                yield BounceReport(
                    "complaint", address, message_id, None, f"feedback: {feedback}", at
                )


def _ses_message_id(mail: dict[str, Any]) -> str | None:
    """Our Message-ID header, as SES echoes it (its own ``messageId`` is not ours)."""
    common = _object(mail.get("commonHeaders")).get("messageId")
    if isinstance(common, str):
        return common
    for header in _objects(mail.get("headers")):
        if str(header.get("name", "")).lower() == "message-id":
            return _text(header.get("value"))
    return None


def _sendgrid(events: list[Any]) -> Iterator[BounceReport]:
    for item in events:
        if not isinstance(item, dict):
            raise PayloadError("a SendGrid event list holds objects only")
        kind = _sendgrid_kind(item)
        address = _address(item.get("email"))
        if kind is None or address is None:
            continue
        timestamp = item.get("timestamp")
        at = (
            datetime.fromtimestamp(timestamp, UTC)
            if isinstance(timestamp, int | float) and not isinstance(timestamp, bool)
            else None
        )
        yield _report(kind, address, item, "smtp-id", at)


def _sendgrid_kind(item: dict[str, Any]) -> BounceKind | None:
    event = item.get("event")
    if event == "bounce":
        return "soft" if item.get("type") == "blocked" else "hard"
    if event == "spamreport":
        return "complaint"
    if event == "dropped":  # SendGrid refused to send; its reason says why
        reason = str(item.get("reason", "")).lower()
        if "spam" in reason:
            return "complaint"
        if "bounced" in reason or reason == "invalid":
            return "hard"
    return None


def _report(
    kind: BounceKind,
    address: str,
    item: dict[str, Any],
    message_id_field: str,
    occurred_at: datetime | None,
) -> BounceReport:
    """A report from an event whose status and reason are in ``status`` and ``reason``."""
    return BounceReport(
        kind,
        address,
        _text(item.get(message_id_field)),
        _text(item.get("status")),
        _text(item.get("reason")),
        occurred_at,
    )


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _objects(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _address(value: Any) -> str | None:
    """A provider's address, or None to skip a recipient we could never have mailed."""
    return clean_address(value) if isinstance(value, str) else None


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    text = " ".join(str(value).split())
    return text[:_MAX_TEXT] or None


def _iso_moment(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return clock.parse_moment(value)
    except CadenceError:
        return None
