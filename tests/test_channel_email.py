"""The e-mail channel against a real SMTP server (the sink, aiosmtpd on loopback): what
arrives, header safety, List-Unsubscribe, and what each failure of the server means."""

from __future__ import annotations

import asyncio
import email
import email.policy
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from typing import Any

import pytest

from channels.base import OutgoingMessage, SendOutcome
from channels.email import EmailChannel, build_message
from channels.smtp_replies import reply_outcome, retry_hint
from core import clock
from core.errors import ConfigError
from core.settings import EmailSettings, SmtpSettings
from core.sink import SmtpSink
from tests.channel_helpers import HTML, TEXT, UNSUBSCRIBE, outgoing, send_through, unused_port
from tests.conftest import NOW
from tests.smtp_sink import smtp_settings_for, smtp_sink

__all__ = ["smtp_sink"]


def parsed(data: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def texts(message: EmailMessage) -> dict[str, str]:
    """Each text part decoded, line endings as the template wrote them."""
    return {
        part.get_content_type(): str(part.get_content()).replace("\r\n", "\n")
        for part in message.walk()
        if part.get_content_maintype() == "text"
    }


def received_by_address(sink: SmtpSink) -> dict[str, EmailMessage]:
    return {received.recipients[0]: parsed(received.data) for received in sink.messages}


async def send(
    sink: SmtpSink, batch: Sequence[OutgoingMessage], email_settings: EmailSettings | None = None
) -> list[SendOutcome]:
    channel = EmailChannel(smtp_settings_for(sink), email_settings or EmailSettings())
    return await send_through(channel, batch)


async def test_a_batch_arrives_as_text_and_html(
    smtp_sink: SmtpSink, frozen_clock: clock.FixedClock
) -> None:
    settings = EmailSettings(from_name="Cadence Shop", reply_to="help@cadence.example")
    batch = [outgoing(1), outgoing(2, html=None, category="transactional"), outgoing(3)]

    outcomes = await send(smtp_sink, batch, settings)

    assert outcomes == [SendOutcome.sent(1), SendOutcome.sent(2), SendOutcome.sent(3)]
    first = received_by_address(smtp_sink)["customer1@example.com"]
    assert first["From"] == "Cadence Shop <news@cadence.example>"
    assert first["To"] == "Customer 1 <customer1@example.com>"
    assert first["Reply-To"] == "help@cadence.example"
    assert first["Subject"] == "Your spring offer"
    assert first["Message-ID"] == "<cadence.1@cadence.example>"
    assert first["MIME-Version"] == "1.0"
    assert parsedate_to_datetime(str(first["Date"])) == NOW
    assert first.get_content_type() == "multipart/alternative"
    assert texts(first) == {"text/plain": TEXT, "text/html": HTML}
    assert all(part.get_content_charset() == "utf-8" for part in first.iter_parts())

    text_only = received_by_address(smtp_sink)["customer2@example.com"]
    assert text_only.get_content_type() == "text/plain"
    assert texts(text_only) == {"text/plain": TEXT}
    assert {m.mail_from for m in smtp_sink.messages} == {"news@cadence.example"}


async def test_the_bytes_sent_are_the_bytes_built(
    smtp_sink: SmtpSink, frozen_clock: clock.FixedClock
) -> None:
    await send(smtp_sink, [outgoing(1, text="plain ascii\n")])

    assert smtp_sink.messages[0].data == build_message(
        outgoing(1, text="plain ascii\n"), EmailSettings()
    )


@pytest.mark.parametrize(
    "text",
    [".starts with a period\n.\n..two\nend.\n", "no line break at the end", "last\n."],
)
async def test_lines_with_leading_periods_and_unterminated_texts_arrive_unchanged(
    smtp_sink: SmtpSink, frozen_clock: clock.FixedClock, text: str
) -> None:
    # The channel does the DATA period doubling itself (a lone "." would end the message).
    message = outgoing(1, text=text, html=None)

    [outcome] = await send(smtp_sink, [message])

    assert outcome == SendOutcome.sent(1)
    built = build_message(message, EmailSettings())
    terminated = built if built.endswith(b"\r\n") else built + b"\r\n"
    assert smtp_sink.messages[0].data == terminated
    assert texts(parsed(smtp_sink.messages[0].data))["text/plain"].rstrip("\n") == text.rstrip("\n")


async def test_non_ascii_headers_are_encoded_and_read_back(smtp_sink: SmtpSink) -> None:
    subject = "Olá Zoë — 20 % de desconto ☀ " * 12
    name = "Zoë Łukasiewicz-Gonçalves"
    batch = [outgoing(1, subject=subject, name=name, category="transactional")]
    await send(smtp_sink, batch, EmailSettings(from_name="Café"))

    data = smtp_sink.messages[0].data
    head = data.split(b"\r\n\r\n")[0]
    assert head.isascii()
    assert max(len(line) for line in head.split(b"\r\n")) <= 78
    received = parsed(data)
    assert received["Subject"] == subject.strip()
    assert received["To"].addresses[0].display_name == name
    assert received["From"].addresses[0].display_name == "Café"


@pytest.mark.parametrize(
    "subject",
    [
        "Our  spring offer, with two spaces, " * 4 + "and a last word",
        "A-subject-that-has-no-space-at-all-" * 5,
    ],
)
async def test_long_plain_subjects_are_folded_and_read_back(
    smtp_sink: SmtpSink, subject: str
) -> None:
    await send(smtp_sink, [outgoing(1, subject=subject, category="transactional")])

    data = smtp_sink.messages[0].data
    head = data.split(b"\r\n\r\n")[0].decode("ascii")
    subject_lines = head.partition("Subject: ")[2].split("\r\nMIME-Version")[0].split("\r\n")
    assert "=?" not in head
    if " " in subject:
        assert len(subject_lines[0]) <= 78 - len("Subject: ")
        assert max(len(line) for line in subject_lines) <= 78
        assert len(subject_lines) > 1
    assert parsed(data)["Subject"] == subject.strip()


async def test_long_lines_and_non_ascii_bodies_keep_within_the_line_limit(
    smtp_sink: SmtpSink,
) -> None:
    long_text = "ção " * 2000 + "\nend\n"
    long_html = "<p>" + "x" * 5000 + "</p>"
    boundary_like = "a line like --=_cadence_1 and =_ marks\n"
    await send(
        smtp_sink,
        [outgoing(1, text=long_text, html=long_html), outgoing(2, text=boundary_like)],
    )

    received = received_by_address(smtp_sink)
    for stored in smtp_sink.messages:
        assert max(len(line) for line in stored.data.split(b"\r\n")) <= 998
    assert texts(received["customer1@example.com"]) == {
        "text/plain": long_text,
        "text/html": long_html,
    }
    assert texts(received["customer2@example.com"]) == {
        "text/plain": boundary_like,
        "text/html": HTML,
    }


async def test_plain_ascii_goes_unencoded_and_the_rest_quoted_printable(
    smtp_sink: SmtpSink,
) -> None:
    await send(smtp_sink, [outgoing(1, text="plain ascii\n", html="<p>Zoë</p>")])

    first, second = parsed(smtp_sink.messages[0].data).iter_parts()
    assert first["Content-Transfer-Encoding"] == "7bit"
    assert second["Content-Transfer-Encoding"] == "quoted-printable"


async def test_line_breaks_in_subjects_and_names_never_make_headers(
    smtp_sink: SmtpSink,
) -> None:
    batch = [
        outgoing(1, subject="Hello\r\nBcc: victim@example.com", name="Eve\nX-Injected: yes"),
        outgoing(2, subject="Tab\tand\x00nul\x7fdel\u2028separator"),
    ]
    outcomes = await send(smtp_sink, batch, EmailSettings(from_name="Shop\r\nX-Evil: 1"))

    assert outcomes == [SendOutcome.sent(1), SendOutcome.sent(2)]
    received = received_by_address(smtp_sink)
    first = received["customer1@example.com"]
    for header in ("Bcc", "X-Injected", "X-Evil"):
        assert header not in first
    assert first["Subject"] == "Hello Bcc: victim@example.com"
    assert first["To"].addresses[0].display_name == "Eve X-Injected: yes"
    assert first["From"].addresses[0].display_name == "Shop X-Evil: 1"
    assert received["customer2@example.com"]["Subject"] == "Tab and nul del separator"


@pytest.mark.parametrize(
    "address",
    [
        "victim@example.com\r\nBcc: other@example.com",
        "one@example.com, two@example.com",
        "Name <one@example.com>",
        "one@example.com>",
        '"quoted"@example.com',
        "two words@example.com",
        "no-at-sign",
        "trailing-newline@example.com\n",
        "",
        None,
    ],
)
async def test_an_address_that_is_not_one_plain_address_fails_alone(
    smtp_sink: SmtpSink, address: str | None
) -> None:
    outcomes = await send(smtp_sink, [outgoing(1, address=address), outgoing(2)])

    assert outcomes == [SendOutcome.failed(1, "invalid address"), SendOutcome.sent(2)]
    assert [m.recipients for m in smtp_sink.messages] == [("customer2@example.com",)]


async def test_an_international_domain_is_sent_in_its_ascii_form(smtp_sink: SmtpSink) -> None:
    await send(smtp_sink, [outgoing(1, address="zoe@bücher.example")])

    assert smtp_sink.messages[0].recipients == ("zoe@xn--bcher-kva.example",)


async def test_marketing_carries_one_click_list_unsubscribe(smtp_sink: SmtpSink) -> None:
    settings = EmailSettings(unsubscribe_mailto="unsubscribe@cadence.example")
    batch = [
        outgoing(1),
        outgoing(2, unsubscribe_mailto="mailto:opt-out@cadence.example?subject=2"),
        outgoing(3, category="transactional"),
        outgoing(4, unsubscribe_url=None),
    ]
    await send(smtp_sink, batch, settings)

    received = received_by_address(smtp_sink)
    first = received["customer1@example.com"]
    token = UNSUBSCRIBE.rpartition("/")[2]
    assert first["List-Unsubscribe"] == (
        f"<{UNSUBSCRIBE}>, <mailto:unsubscribe@cadence.example?subject=unsubscribe%20{token}>"
    )
    assert first["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    second = received["customer2@example.com"]
    assert second["List-Unsubscribe"] == (
        f"<{UNSUBSCRIBE}>, <mailto:opt-out@cadence.example?subject=2>"
    )
    assert "List-Unsubscribe" not in received["customer3@example.com"]
    fourth = received["customer4@example.com"]
    assert fourth["List-Unsubscribe"] == (
        "<mailto:unsubscribe@cadence.example?subject=unsubscribe>"
    )
    assert "List-Unsubscribe-Post" not in fourth


async def test_without_an_unsubscribe_address_only_the_https_link_is_listed(
    smtp_sink: SmtpSink,
) -> None:
    await send(smtp_sink, [outgoing(1)])

    assert parsed(smtp_sink.messages[0].data)["List-Unsubscribe"] == f"<{UNSUBSCRIBE}>"


async def test_a_refused_recipient_fails_alone_and_the_connection_goes_on(
    smtp_sink: SmtpSink,
) -> None:
    smtp_sink.reject["customer3@example.com"] = (550, "5.1.1 no such mailbox")
    smtp_sink.reject["customer4@example.com"] = (451, "4.7.1 greylisted, try again in 30 seconds")

    outcomes = await send(
        smtp_sink, [outgoing(n) for n in range(1, 7)], EmailSettings(connections=1)
    )

    assert outcomes == [
        SendOutcome.sent(1),
        SendOutcome.sent(2),
        SendOutcome.failed(3, "550 5.1.1 no such mailbox", suppress=True),
        SendOutcome.retry(4, "451 4.7.1 greylisted, try again in 30 seconds", 30.0),
        SendOutcome.sent(5),
        SendOutcome.sent(6),
    ]
    assert smtp_sink.stats().received == 4
    assert smtp_sink.stats().connections == 1


@pytest.mark.parametrize(
    ("code", "text", "suppress"),
    [
        (550, "no such user", True),
        (551, "not local", True),
        (553, "bad mailbox", True),
        (554, "rejected", True),
        (552, "mailbox full", False),
        (530, "auth needed", False),
    ],
)
async def test_permanent_refusals_fail_and_mailbox_ones_suppress(
    smtp_sink: SmtpSink, code: int, text: str, suppress: bool
) -> None:
    smtp_sink.reject["customer1@example.com"] = (code, text)

    [outcome] = await send(smtp_sink, [outgoing(1)])

    assert outcome == SendOutcome.failed(1, f"{code} {text}", suppress=suppress)


async def test_a_closing_server_means_retry_and_the_next_batch_reconnects(
    smtp_sink: SmtpSink,
) -> None:
    smtp_sink.reject["customer1@example.com"] = (421, "4.3.2 shutting down, retry after 2 minutes")
    channel = EmailChannel(smtp_settings_for(smtp_sink), EmailSettings(connections=1))
    await channel.open()
    try:
        assert await channel.send([outgoing(1)]) == [
            SendOutcome.retry(1, "421 4.3.2 shutting down, retry after 2 minutes", 120.0)
        ]
        assert await channel.send([outgoing(2)]) == [SendOutcome.sent(2)]
    finally:
        await channel.close()
    assert smtp_sink.stats().connections == 2


@pytest.mark.parametrize(
    ("stage", "code", "outcome"),
    [
        ("data", 550, SendOutcome.failed(1, "550 spam", suppress=True)),
        ("data", 554, SendOutcome.failed(1, "554 spam", suppress=True)),
        ("data", 552, SendOutcome.failed(1, "552 spam")),
        ("mail", 550, SendOutcome.failed(1, "550 spam")),
        ("data", 451, SendOutcome.retry(1, "451 spam")),
        ("mail", 250, SendOutcome.sent(1)),
    ],
)
def test_replies_at_each_stage_become_outcomes(stage: Any, code: int, outcome: SendOutcome) -> None:
    assert reply_outcome(1, code, "spam", stage) == outcome


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("4.7.1 greylisted, try again in 30 seconds", 30.0),
        ("retry after 120s", 120.0),
        ("Try again in 5 minutes.", 300.0),
        ("4.2.0 deferred, retry in 1h", 3600.0),
        ("4.7.0 try again later", None),
        ("4.7.1 refused in 5.7.1 policy", None),
    ],
)
def test_a_reply_may_say_how_long_to_wait(text: str, seconds: float | None) -> None:
    assert retry_hint(text) == seconds


async def test_a_server_that_is_down_means_retry_for_the_whole_batch_at_once() -> None:
    port = unused_port()
    channel = EmailChannel(SmtpSettings(port=port, timeout_seconds=5), EmailSettings())
    started = time.monotonic()
    await channel.open()
    outcomes = await channel.send([outgoing(n) for n in range(50)])
    await channel.close()

    assert time.monotonic() - started < 2
    assert {outcome.status for outcome in outcomes} == {"retry"}
    assert len(outcomes) == 50
    assert str(outcomes[0].reason).startswith(
        f"cannot connect to the SMTP server at 127.0.0.1:{port}"
    )


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """A server that accepts connections and never says a word."""

    async def listen(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(listen, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def test_a_silent_server_costs_one_timeout_per_connection_not_per_message(
    silent_server: int,
) -> None:
    channel = EmailChannel(
        SmtpSettings(port=silent_server, timeout_seconds=0.3), EmailSettings(connections=4)
    )
    started = time.monotonic()
    outcomes = await channel.send([outgoing(n) for n in range(40)])
    await channel.close()

    assert time.monotonic() - started < 1.5
    assert [outcome.status for outcome in outcomes] == ["retry"] * 40


async def test_dropped_connections_are_reopened_and_every_message_goes(
    smtp_sink: SmtpSink,
) -> None:
    smtp_sink.drop_after = 3

    outcomes = await send(smtp_sink, [outgoing(n) for n in range(30)], EmailSettings(connections=2))

    assert {outcome.status for outcome in outcomes} == {"sent"}
    stats = smtp_sink.stats()
    assert (stats.received, stats.distinct, stats.duplicates) == (30, 30, 0)
    assert stats.connections >= 10


async def test_a_lost_reply_is_sent_again_once_and_shows_as_a_duplicate(
    smtp_sink: SmtpSink,
) -> None:
    smtp_sink.drop_after = 2
    smtp_sink.lose_reply = True

    outcomes = await send(smtp_sink, [outgoing(n) for n in range(10)], EmailSettings(connections=1))

    assert {outcome.status for outcome in outcomes} == {"sent"}
    stats = smtp_sink.stats()
    assert (stats.distinct, stats.duplicates) == (10, 9)


async def test_the_pool_keeps_its_connections_across_batches_and_after_a_restart(
    smtp_sink: SmtpSink,
) -> None:
    channel = EmailChannel(smtp_settings_for(smtp_sink), EmailSettings(connections=4))
    await channel.open()
    try:
        for first in range(0, 60, 20):
            outcomes = await channel.send([outgoing(n) for n in range(first, first + 20)])
            assert {outcome.status for outcome in outcomes} == {"sent"}
        assert smtp_sink.stats().connections == 4

        await smtp_sink.stop()
        down = await channel.send([outgoing(100), outgoing(101)])
        assert [outcome.status for outcome in down] == ["retry", "retry"]
        await smtp_sink.start()
        back = await channel.send([outgoing(100), outgoing(101)])
        assert [outcome.status for outcome in back] == ["sent", "sent"]
    finally:
        await channel.close()
    assert smtp_sink.stats().received == 62


async def test_each_outcome_is_reported_before_its_connection_sends_again(
    smtp_sink: SmtpSink,
) -> None:
    channel = EmailChannel(smtp_settings_for(smtp_sink), EmailSettings(connections=1))
    arrived_at_report: list[int] = []

    async def report(outcome: SendOutcome) -> None:
        await asyncio.sleep(0.005)
        arrived_at_report.append(smtp_sink.stats().received)

    smtp_sink.reject["customer2@example.com"] = (550, "no such user")
    outcomes = await channel.send([outgoing(n) for n in range(5)], report)
    await channel.close()

    assert len(outcomes) == 5
    assert arrived_at_report == [1, 2, 2, 3, 4]


def test_tls_and_starttls_together_are_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="exclude each other"):
        EmailChannel(SmtpSettings(tls=True, starttls=True), EmailSettings())


@pytest.mark.parametrize(
    "fields",
    [
        {"from_address": "News <news@example.com>"},
        {"reply_to": "a@example.com, b@example.com"},
        {"unsubscribe_mailto": "not an address"},
    ],
)
def test_sender_addresses_must_be_plain_addresses(fields: dict[str, str]) -> None:
    [(key, value)] = fields.items()
    with pytest.raises(ConfigError, match=f"channels.email.{key} {value!r} is not one plain"):
        EmailChannel(SmtpSettings(), EmailSettings.model_validate(fields))


def test_a_message_may_leave_out_its_subject() -> None:
    built = build_message(replace(outgoing(1), subject=None), EmailSettings())
    assert parsed(built)["Subject"] == ""
