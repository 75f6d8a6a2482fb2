"""Bounce mailboxes: RFC 3464 delivery status notifications and ARF complaints, built with
the ``email`` package, read from a maildir or an mbox and recorded on both databases, and
``cadence bounces ingest`` run once as a user runs it."""

from __future__ import annotations

import mailbox
import re
from datetime import timedelta
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.bounces import (
    BounceReport,
    MailboxFormat,
    ingest_mailbox,
    mailbox_format,
    read_report,
)
from core.db import Store
from core.errors import CadenceError
from core.models import Event
from core.settings import Settings
from tests.conftest import NOW
from tests.test_api import (
    CAMPAIGN,
    World,
    address,
    events_of,
    make_world,
    outbox_rows,
    suppressions,
)
from tests.test_cli import NOW as CLI_NOW
from tests.test_cli import Cli, assert_one_line_error, query

REPORTED_AT = NOW - timedelta(hours=1)
MESSAGE_ID = "<cadence.42@news.example>"
STRANGER = "stranger@example.net"


def fields(**values: str) -> Message:
    """One block of header fields, as a delivery-status part holds them."""
    block = Message()
    for name, value in values.items():
        block[name.replace("_", "-")] = value
    return block


def delivery_status(
    *recipients: Message, original_message_id: str | None, whole_original: bool = False
) -> bytes:
    """A delivery status notification (RFC 3464) about the message ``original_message_id``,
    with the original's headers (``text/rfc822-headers``) or the whole original
    (``message/rfc822``)."""
    report = MIMEMultipart("report", report_type="delivery-status")
    report["From"] = "Mail Delivery System <MAILER-DAEMON@mx.example>"
    report["To"] = "news@news.example"
    report["Subject"] = "Undelivered Mail Returned to Sender"
    report["Date"] = format_datetime(REPORTED_AT)
    report.attach(MIMEText("This is the mail system at host mx.example.\n\nI'm sorry..."))
    status = MIMEBase("message", "delivery-status")
    status.set_payload([fields(Reporting_MTA="dns; mx.example"), *recipients])
    report.attach(status)
    if original_message_id is not None:
        headers = f"Message-ID: {original_message_id}\nSubject: Spring offer\n"
        if whole_original:
            original = Message()
            original["Message-ID"] = original_message_id
            original["Subject"] = "Spring offer"
            original.set_payload("Our spring offer.\n")
            report.attach(MIMEMessage(original))
        else:
            report.attach(MIMEText(headers, "rfc822-headers"))
    return report.as_bytes()


def failed(recipient: str, status: str = "5.1.1", diagnostic: str | None = None) -> Message:
    return fields(
        Final_Recipient=f"rfc822; {recipient}",
        Original_Recipient=f"rfc822;{recipient}",
        Action="failed",
        Status=status,
        Diagnostic_Code=diagnostic
        or f"smtp; 550 5.1.1 <{recipient}>: Recipient address rejected: User unknown",
    )


def delayed(recipient: str) -> Message:
    return fields(
        Final_Recipient=f"rfc822; {recipient}",
        Action="delayed",
        Status="4.2.2",
        Diagnostic_Code="smtp; 452 4.2.2 Mailbox full",
    )


def complaint(recipient: str, message_id: str, feedback_type: str = "abuse") -> bytes:
    """An ARF feedback report (RFC 5965) about the message ``message_id``."""
    report = MIMEMultipart("report", report_type="feedback-report")
    report["From"] = "abuse@isp.example"
    report["Date"] = format_datetime(REPORTED_AT)
    report.attach(MIMEText("This is an email abuse report for an email message received."))
    feedback = MIMEBase("message", "feedback-report")
    feedback.set_payload(
        f"Feedback-Type: {feedback_type}\nUser-Agent: SomeISP/1.0\nVersion: 1\n"
        f"Original-Rcpt-To: {recipient}\n"
    )
    report.attach(feedback)
    original = Message()
    original["Message-ID"] = message_id
    original["To"] = recipient
    original.set_payload("Our spring offer.\n")
    report.attach(MIMEMessage(original))
    return report.as_bytes()


def plain_message() -> bytes:
    message = MIMEText("Hi, please call me back about my order.")
    message["From"] = "a.customer@example.org"
    message["Subject"] = "Re: Spring offer"
    return message.as_bytes()


def mailbox_of(world: World) -> list[bytes]:
    """A hard bounce for bob, a delay for carol, a complaint from alice, a hard bounce for
    an address we never mailed, and a message that is no report."""
    return [
        delivery_status(failed(address("bob")), original_message_id=world.message_id("bob")),
        delivery_status(
            delayed(address("carol")),
            original_message_id=world.message_id("carol"),
            whole_original=True,
        ),
        complaint(address("alice"), world.message_id("alice")),
        delivery_status(failed(STRANGER), original_message_id=None),
        plain_message(),
    ]


def write_mailbox(path: Path, fmt: MailboxFormat, messages: list[bytes]) -> Path:
    box: mailbox.Mailbox[mailbox.Message]
    box = mailbox.Maildir(path, create=True) if fmt == "maildir" else mailbox.mbox(path)
    for message in messages:
        box.add(message)
    box.flush()
    box.close()
    return path


# --- reading reports -----------------------------------------------------------------------


def test_a_hard_bounce_names_the_recipient_status_reason_and_message() -> None:
    data = delivery_status(failed("Bob@Example.com"), original_message_id=MESSAGE_ID)

    assert read_report(data) == [
        BounceReport(
            "hard",
            "Bob@Example.com",
            MESSAGE_ID,
            "5.1.1",
            "550 5.1.1 <Bob@Example.com>: Recipient address rejected: User unknown",
            REPORTED_AT,
        )
    ]


def test_a_delay_is_a_soft_bounce_and_the_original_may_be_the_whole_message() -> None:
    data = delivery_status(
        delayed("carol@example.com"), original_message_id=MESSAGE_ID, whole_original=True
    )

    (report,) = read_report(data) or []
    assert (report.kind, report.status, report.message_id) == ("soft", "4.2.2", MESSAGE_ID)
    assert report.reason == "452 4.2.2 Mailbox full"


def test_each_failed_recipient_of_a_notification_is_a_report() -> None:
    data = delivery_status(
        failed("a@example.com"),
        failed("b@example.com", status="4.4.7", diagnostic="smtp; 421 timed out"),
        fields(Final_Recipient="rfc822; c@example.com", Action="delivered", Status="2.0.0"),
        fields(Final_Recipient="rfc822; not an address", Action="failed", Status="5.1.3"),
        original_message_id=MESSAGE_ID,
    )

    reports = read_report(data) or []

    # A failure with a 4.x.x status is transient; a delivered recipient is no bounce.
    assert [(r.kind, r.address, r.status) for r in reports] == [
        ("hard", "a@example.com", "5.1.1"),
        ("soft", "b@example.com", "4.4.7"),
    ]


def test_a_complaint_report_names_the_complaining_address() -> None:
    (report,) = read_report(complaint("carol@example.com", MESSAGE_ID)) or []
    assert report == BounceReport(
        "complaint", "carol@example.com", MESSAGE_ID, None, "feedback: abuse", REPORTED_AT
    )
    assert read_report(complaint("carol@example.com", MESSAGE_ID, "not-spam")) == []


def test_a_message_that_is_no_report_is_none() -> None:
    assert read_report(plain_message()) is None
    other_report = MIMEMultipart("report", report_type="disposition-notification")
    assert read_report(other_report.as_bytes()) is None


def test_the_mailbox_format_is_detected_or_the_error_says_what_to_give(tmp_path: Path) -> None:
    maildir = write_mailbox(tmp_path / "Maildir", "maildir", [plain_message()])
    mbox = write_mailbox(tmp_path / "bounces.mbox", "mbox", [plain_message()])
    (tmp_path / "folder").mkdir()
    (tmp_path / "message.eml").write_bytes(plain_message())

    assert mailbox_format(maildir) == "maildir"
    assert mailbox_format(mbox) == "mbox"
    with pytest.raises(CadenceError, match="no such mailbox"):
        mailbox_format(tmp_path / "nowhere")
    with pytest.raises(CadenceError, match="is a folder but not a maildir"):
        mailbox_format(tmp_path / "folder")
    with pytest.raises(CadenceError, match="not an mbox file"):
        mailbox_format(tmp_path / "message.eml")
    with pytest.raises(CadenceError, match=r"is not a maildir.*--format mbox"):
        mailbox_format(mbox, "maildir")


# --- ingesting a mailbox, both databases ---------------------------------------------------


@pytest.mark.parametrize("fmt", ["maildir", "mbox"])
async def test_ingesting_a_mailbox_suppresses_hard_bounces_and_complaints_once(
    store: Store, settings: Settings, tmp_path: Path, fmt: MailboxFormat
) -> None:
    world = await make_world(store, settings)
    path = write_mailbox(tmp_path / f"bounces.{fmt}", fmt, mailbox_of(world))

    tally = await ingest_mailbox(store, path, NOW)

    assert (tally.messages, tally.not_reports) == (5, 1)
    bounced = tally.bounces
    assert (bounced.hard, bounced.soft, bounced.complaints) == (2, 1, 1)
    assert (bounced.matched, bounced.suppressed) == (3, 3)
    assert await suppressions(store) == {
        ("email", address("bob"), "hard_bounce", "mailbox"),
        ("email", STRANGER, "hard_bounce", "mailbox"),
        ("email", address("alice"), "complaint", "mailbox"),
    }
    rows = await outbox_rows(store)
    assert rows[world.sent["bob"]][0] == "sent"
    assert rows[world.sent["bob"]][1] == (
        f"hard bounce: 5.1.1 550 5.1.1 <{address('bob')}>: Recipient address rejected: User unknown"
    )
    assert rows[world.sent["carol"]] == ("sent", "soft bounce: 4.2.2 452 4.2.2 Mailbox full")
    assert rows[world.sent["alice"]] == ("sent", "complaint: feedback: abuse")
    bounces = {event.customer_id: event for event in await events_of(store, "message_bounced")}
    assert set(bounces) == {world.customers["bob"], world.customers["carol"]}
    carol = bounces[world.customers["carol"]]
    assert carol.occurred_at == REPORTED_AT and carol.source == "mailbox"
    assert carol.properties == {
        "outbox_id": world.sent["carol"],
        "campaign": CAMPAIGN,
        "bounce_type": "soft",
        "status": "4.2.2",
        "reason": "452 4.2.2 Mailbox full",
    }
    (complained,) = await events_of(store, "message_complained")
    assert complained.customer_id == world.customers["alice"]

    again = await ingest_mailbox(store, path, NOW + timedelta(minutes=5), chosen=fmt)

    assert (again.messages, again.bounces.hard, again.bounces.suppressed) == (5, 2, 0)
    async with store.reading() as session:
        stored = await session.execute(select(func.count()).select_from(Event))
    assert stored.scalar_one() == 3  # the same reports, dated the same: stored once


async def test_a_large_mailbox_is_recorded_in_batches(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    world = await make_world(store, settings)
    messages = [
        delivery_status(failed(f"gone{i}@example.net"), original_message_id=None) for i in range(7)
    ] + [delivery_status(failed(address("bob")), original_message_id=world.message_id("bob"))]
    path = write_mailbox(tmp_path / "Maildir", "maildir", messages)

    tally = await ingest_mailbox(store, path, NOW, batch_size=3)

    assert (tally.messages, tally.bounces.hard, tally.bounces.suppressed) == (8, 8, 8)
    assert tally.bounces.matched == 1
    assert len(await suppressions(store)) == 8


# --- the command ---------------------------------------------------------------------------


def test_cadence_bounces_ingest_prints_counts_and_is_idempotent(tmp_path: Path) -> None:
    cadence = Cli(tmp_path, tmp_path / "cadence.db")
    cadence.ok("db", "upgrade", "--now", CLI_NOW)
    messages = [
        delivery_status(failed("bob@example.com"), original_message_id=MESSAGE_ID),
        delivery_status(delayed("carol@example.com"), original_message_id=MESSAGE_ID),
        complaint("alice@example.com", MESSAGE_ID),
        plain_message(),
    ]
    maildir = write_mailbox(tmp_path / "Maildir", "maildir", messages)

    first = cadence.ok("bounces", "ingest", str(maildir), "--now", CLI_NOW)
    second = cadence.ok("bounces", "ingest", str(maildir), "--format", "maildir", "--now", CLI_NOW)

    def count(output: str, label: str) -> int:
        match = re.search(rf"^\s*{label}\s+(\d+)\s*$", output, re.MULTILINE)
        assert match, output
        return int(match.group(1))

    assert count(first, "messages read") == 4
    assert count(first, "hard bounces") == 1
    assert count(first, "soft bounces") == 1
    assert count(first, "complaints") == 1
    assert count(first, "not a bounce report") == 1
    assert count(first, "suppressed now") == 2
    assert count(second, "suppressed now") == 0
    assert sorted(query(cadence.database, "SELECT address, reason FROM suppressions")) == [
        ("alice@example.com", "complaint"),
        ("bob@example.com", "hard_bounce"),
    ]
    assert_one_line_error(
        cadence("bounces", "ingest", str(tmp_path / "nowhere"), "--now", CLI_NOW),
        "no such mailbox",
    )
