"""Bounces and complaints, recorded one way whether a provider's webhook or a mailbox of
delivery status notifications brought them.

A hard bounce (the address does not exist: RFC 3464 action ``failed`` with
a 5.x.x status) and a complaint (the recipient reported the message as
spam: an ARF feedback report) suppress the address on e-mail; a soft bounce
(mailbox full, try later) is only an event. When a report's Message-ID
names an outbox row (see :mod:`core.message_ids`), the bounce is written on
that row (``error``; it stays ``sent``) and the event goes to its customer;
otherwise the event goes to the customers with that address.

Mailboxes (a maildir or an mbox file) are read, never changed: ingesting
one twice suppresses nothing new, and since an event is dated by its
report, stores no event twice either.
"""

from __future__ import annotations

import email
import email.policy
import mailbox
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from email.message import EmailMessage, Message
from email.parser import HeaderParser
from email.utils import getaddresses, parsedate_to_datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core import event_types
from core.clock import as_utc
from core.db import Store
from core.db.bulk import EventRow, store_events
from core.errors import CadenceError
from core.message_events import message_event
from core.message_ids import outbox_id_of
from core.models import Campaign, Customer, OutboxMessage
from core.suppressions import COMPLAINT, HARD_BOUNCE, suppress_addresses

BounceKind = Literal["hard", "soft", "complaint"]
MailboxFormat = Literal["maildir", "mbox"]

SUPPRESSED_CHANNEL = "email"
INGEST_BATCH = 500
"""Reports recorded per transaction while ingesting a mailbox."""

_SUPPRESSION_REASONS: dict[BounceKind, str] = {"hard": HARD_BOUNCE, "complaint": COMPLAINT}
_LOOKUP_CHUNK = 500
_MAX_REASON = 1000
_MAX_ADDRESS = 320
_PRINTABLE = re.compile(r"[!-~\u00a1-\U0010ffff]+")  # no spaces or control characters
_STATUS = re.compile(r"\b([245])\.\d{1,3}\.\d{1,3}\b")
# ARF feedback types that mean "this recipient does not want this mail"; the others
# (not-spam, auth-failure, virus) are reports about the mail, not a wish to stop it.
_COMPLAINT_FEEDBACK = frozenset({"abuse", "fraud", "other"})
_POLICY = email.policy.default


@dataclass(frozen=True, slots=True)
class BounceReport:
    """One recipient's bounce or complaint, whichever way it arrived."""

    kind: BounceKind
    address: str
    message_id: str | None = None
    """The Message-ID of the message that bounced, when the report says."""
    status: str | None = None
    """The enhanced status code, e.g. ``5.1.1``."""
    reason: str | None = None
    """What the receiving server said (the diagnostic code), or the feedback type."""
    occurred_at: datetime | None = None
    """When it happened by the report; None: when it was recorded."""


@dataclass(slots=True)
class BounceTally:
    """What recording some reports did."""

    hard: int = 0
    soft: int = 0
    complaints: int = 0
    matched: int = 0
    """Reports whose Message-ID named one of our outbox rows."""
    suppressed: int = 0
    """Addresses suppressed now that were not before."""

    def add(self, other: BounceTally) -> None:
        for item in fields(self):
            setattr(self, item.name, getattr(self, item.name) + getattr(other, item.name))


@dataclass(slots=True)
class MailboxTally:
    """What ingesting a mailbox found and did."""

    messages: int = 0
    not_reports: int = 0
    """Messages that were neither a delivery status notification nor a complaint report."""
    bounces: BounceTally = field(default_factory=BounceTally)


@dataclass(frozen=True, slots=True)
class _SentMessage:
    customer_id: int
    campaign: str
    email: str | None


async def record_bounces(
    session: AsyncSession, reports: Sequence[BounceReport], *, source: str, now: datetime
) -> BounceTally:
    """Suppress what bounced hard or complained, note each bounce on its outbox row and
    write an event per report for its customer; ``source`` says where the reports came
    from (``webhook``, ``mailbox``)."""
    tally = BounceTally()
    sent = await _sent_messages(session, [_outbox_id(report) for report in reports])
    unmatched = [report.address for report in reports if _outbox_id(report) not in sent]
    by_address = await _customers_by_address(session, unmatched)
    suppress: dict[str, list[str]] = {reason: [] for reason in _SUPPRESSION_REASONS.values()}
    row_errors: list[dict[str, Any]] = []
    events: list[EventRow] = []
    for report in reports:
        _count(tally, report.kind)
        outbox_id = _outbox_id(report)
        message = sent.get(outbox_id) if outbox_id is not None else None
        address = report.address
        if message is not None:
            tally.matched += 1
            row_errors.append({"row_id": outbox_id, "bounce_error": _describe(report)})
            if message.email and message.email.lower() == address.lower():
                address = message.email  # the form suppressions are matched against
            customers = [message.customer_id]
        else:
            customers = by_address.get(address, [])
        if report.kind in _SUPPRESSION_REASONS:
            suppress[_SUPPRESSION_REASONS[report.kind]].append(address)
        events.extend(
            _event(report, customer_id, outbox_id if message else None, message, source, now)
            for customer_id in customers
        )
    for reason, addresses in suppress.items():
        tally.suppressed += await suppress_addresses(
            session, SUPPRESSED_CHANNEL, addresses, reason, source, now
        )
    if row_errors:
        # On the connection: an executemany UPDATE with its own WHERE, not the ORM's
        # bulk update by primary key.
        connection = await session.connection()
        await connection.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == bindparam("row_id"))
            .values(error=bindparam("bounce_error")),
            row_errors,
        )
    await store_events(session, events, now)
    return tally


def _count(tally: BounceTally, kind: BounceKind) -> None:
    if kind == "hard":
        tally.hard += 1
    elif kind == "soft":
        tally.soft += 1
    else:
        tally.complaints += 1


def _outbox_id(report: BounceReport) -> int | None:
    return outbox_id_of(report.message_id) if report.message_id else None


def _describe(report: BounceReport) -> str:
    what = "complaint" if report.kind == "complaint" else f"{report.kind} bounce"
    detail = " ".join(part for part in (report.status, report.reason) if part)
    return f"{what}: {detail}" if detail else what


def _event(
    report: BounceReport,
    customer_id: int,
    outbox_id: int | None,
    message: _SentMessage | None,
    source: str,
    now: datetime,
) -> EventRow:
    properties: dict[str, Any] = {
        "outbox_id": outbox_id,
        "campaign": message.campaign if message else None,
        "status": report.status,
        "reason": report.reason,
    }
    if report.kind == "complaint":
        kind = event_types.MESSAGE_COMPLAINED
    else:
        kind = event_types.MESSAGE_BOUNCED
        properties["bounce_type"] = report.kind
    key = f"{report.kind}:{outbox_id if outbox_id is not None else report.address}"
    at = report.occurred_at or now
    return message_event(customer_id, kind, at, properties, source=source, idempotency_key=key)


T = TypeVar("T")


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def _sent_messages(
    session: AsyncSession, outbox_ids: Sequence[int | None]
) -> dict[int | None, _SentMessage]:
    ids = sorted({outbox_id for outbox_id in outbox_ids if outbox_id is not None})
    found: dict[int | None, _SentMessage] = {}
    for chunk in _chunks(ids, _LOOKUP_CHUNK):
        rows = await session.execute(
            select(OutboxMessage.id, OutboxMessage.customer_id, Campaign.name, Customer.email)
            .join(Campaign, Campaign.id == OutboxMessage.campaign_id)
            .join(Customer, Customer.id == OutboxMessage.customer_id)
            .where(OutboxMessage.id.in_(chunk))
        )
        for row_id, customer_id, campaign, address in rows:
            found[row_id] = _SentMessage(customer_id, campaign, address)
    return found


async def _customers_by_address(
    session: AsyncSession, addresses: Sequence[str]
) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for chunk in _chunks(sorted(set(addresses)), _LOOKUP_CHUNK):
        rows = await session.execute(
            select(Customer.email, Customer.id).where(Customer.email.in_(chunk))
        )
        for address, customer_id in rows:
            if address is not None:
                found.setdefault(address, []).append(customer_id)
    return found


def read_report(data: bytes) -> list[BounceReport] | None:
    """The bounces (RFC 3464 delivery status notification) or the complaint (ARF feedback
    report) in one raw message; None when it is neither. A notification that only says
    a message was delayed gives soft bounces; one that says it was delivered, none."""
    message = email.message_from_bytes(data, policy=_POLICY)
    if message.get_content_type() != "multipart/report":
        return None
    report_type = message.get_param("report-type")
    kind = report_type.lower() if isinstance(report_type, str) else ""
    parts: list[Message] = list(message.iter_parts())
    original = _original_headers(parts)
    message_id = _header(original, "Message-ID") or None
    at = _date_of(message)
    if kind == "delivery-status":
        return _delivery_failures(parts, message_id, at)
    if kind == "feedback-report":
        return _complaints(parts, original, message_id, at)
    return None


def _delivery_failures(
    parts: list[Message], message_id: str | None, at: datetime | None
) -> list[BounceReport] | None:
    status_part = _part(parts, "message/delivery-status")
    blocks = status_part.get_payload() if status_part is not None else None
    if not isinstance(blocks, list):
        return None
    reports = []
    # The first block is about the message; each one with an Action is about a recipient.
    for block in blocks:
        if not isinstance(block, Message):
            continue
        action = _header(block, "Action").lower()
        if action not in ("failed", "delayed"):
            continue
        address = clean_address(
            _header(block, "Original-Recipient") or _header(block, "Final-Recipient")
        )
        if address is None:
            continue
        status = _status(_header(block, "Status")) or _status(_header(block, "Diagnostic-Code"))
        hard = action == "failed" and status is not None and status.startswith("5")
        reports.append(
            BounceReport(
                "hard" if hard else "soft",
                address,
                message_id,
                status,
                _diagnostic(_header(block, "Diagnostic-Code")),
                at,
            )
        )
    return reports


def _complaints(
    parts: list[Message], original: Message | None, message_id: str | None, at: datetime | None
) -> list[BounceReport] | None:
    feedback_part = _part(parts, "message/feedback-report")
    payload = feedback_part.get_payload() if feedback_part is not None else None
    feedback = payload[0] if isinstance(payload, list) and payload else None
    if not isinstance(feedback, Message):
        return None
    feedback_type = (_header(feedback, "Feedback-Type") or "abuse").lower()
    if feedback_type not in _COMPLAINT_FEEDBACK:
        return []
    address = clean_address(_header(feedback, "Original-Rcpt-To"))
    if address is None and original is not None:
        recipients = getaddresses([_header(original, "To")])
        address = clean_address(recipients[0][1]) if recipients else None
    if address is None:
        return []
    return [BounceReport("complaint", address, message_id, None, f"feedback: {feedback_type}", at)]


def _part(parts: list[Message], content_type: str) -> Message | None:
    return next((part for part in parts if part.get_content_type() == content_type), None)


def _original_headers(parts: list[Message]) -> Message | None:
    """The headers of the message the report is about: a ``text/rfc822-headers`` part or
    the whole message in a ``message/rfc822`` part."""
    for part in parts:
        content_type = part.get_content_type()
        if content_type == "text/rfc822-headers":
            text = part.get_payload(decode=True)
            if isinstance(text, bytes):
                return HeaderParser(policy=_POLICY).parsestr(text.decode("utf-8", "replace"))
        elif content_type == "message/rfc822":
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                return inner[0]
    return None


def _header(message: Message | None, name: str) -> str:
    value = message.get(name) if message is not None else None
    return str(value).strip() if value is not None else ""


def clean_address(value: str) -> str | None:
    """The address in a recipient field (``bob@example.com``, ``rfc822; <bob@example.com>``),
    or None when it is not one."""
    _, separator, rest = value.partition(";")
    address = (rest if separator else value).strip().strip("<>").strip()
    if "@" not in address or len(address) > _MAX_ADDRESS or not _PRINTABLE.fullmatch(address):
        return None
    return address


def _status(value: str) -> str | None:
    match = _STATUS.search(value)
    return match.group(0) if match else None


def _diagnostic(value: str) -> str | None:
    """The server's words from a ``Diagnostic-Code`` (``smtp; 550 5.1.1 ...``)."""
    _, separator, rest = value.partition(";")
    text = " ".join((rest if separator else value).split())
    return text[:_MAX_REASON] or None


def _date_of(message: EmailMessage) -> datetime | None:
    value = message.get("Date")
    if value is None:
        return None
    try:
        return as_utc(parsedate_to_datetime(str(value)))
    except (TypeError, ValueError):
        return None


def mailbox_format(path: Path, chosen: MailboxFormat | None = None) -> MailboxFormat:
    """The format of the mailbox at ``path``: as ``chosen``, or a folder with ``cur/`` and
    ``new/`` is a maildir and a file an mbox; :class:`CadenceError` when it is neither."""
    is_maildir = path.is_dir() and (path / "cur").is_dir() and (path / "new").is_dir()
    if not path.exists():
        raise CadenceError(f"{path}: no such mailbox; give a maildir folder or an mbox file")
    found: MailboxFormat = chosen or ("maildir" if is_maildir else "mbox")
    if found == "maildir" and not is_maildir:
        raise CadenceError(
            f"{path} is not a maildir (a folder with cur/, new/ and tmp/ inside); "
            "for an mbox file pass --format mbox"
        )
    if found == "mbox":
        if not path.is_file():
            raise CadenceError(f"{path} is a folder but not a maildir (it has no cur/ and new/)")
        with path.open("rb") as head:
            start = head.read(5)
        if start and start != b"From ":
            raise CadenceError(
                f"{path} does not start with a 'From ' line, so it is not an mbox file; "
                "give a maildir folder or an mbox file"
            )
    return found


def mailbox_messages(path: Path, chosen: MailboxFormat | None = None) -> Iterator[bytes]:
    """Every message in the mailbox at ``path``, raw, in the mailbox's order."""
    box: mailbox.Mailbox[Any]
    if mailbox_format(path, chosen) == "maildir":
        box = mailbox.Maildir(path, factory=None, create=False)
    else:
        box = mailbox.mbox(path, factory=None, create=False)
    try:
        for key in box.iterkeys():
            yield box.get_bytes(key)
    finally:
        box.close()


async def ingest_mailbox(
    store: Store,
    path: Path,
    now: datetime,
    *,
    chosen: MailboxFormat | None = None,
    batch_size: int = INGEST_BATCH,
) -> MailboxTally:
    """Record every bounce and complaint report in the mailbox at ``path``."""
    tally = MailboxTally()
    pending: list[BounceReport] = []

    async def record() -> None:
        async with store.transaction() as session:
            tally.bounces.add(await record_bounces(session, pending, source="mailbox", now=now))
        pending.clear()

    for data in mailbox_messages(path, chosen):
        tally.messages += 1
        reports = read_report(data)
        if reports is None:
            tally.not_reports += 1
            continue
        pending.extend(reports)
        if len(pending) >= batch_size:
            await record()
    if pending:
        await record()
    return tally
