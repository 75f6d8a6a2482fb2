"""The SMTP sink: a real server that takes messages intact, counts duplicates by
Message-ID, refuses and drops on request, and runs as ``cadence sink``."""

from __future__ import annotations

import asyncio
import email
import json
import mailbox
import signal
import subprocess
import sys
import time
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path

import aiosmtplib
import pytest

from core.sink import SmtpSink
from tests.smtp_sink import smtp_sink

__all__ = ["smtp_sink"]

SENDER = "news@cadence.example"
TEXT = "Olá Zoë,\nyour offer is ready.\n.\nA line with a dot only, above.\n"
HTML = "<p>Olá <b>Zoë</b>,</p>\n<p>your offer is ready.</p>\n"


def multipart(message_id: str | None = "<cadence.1@cadence.example>") -> bytes:
    """A message built by the standard library, independent of the e-mail channel."""
    message = MIMEMultipart("alternative")
    message["Subject"] = "Your offer"
    message["From"] = SENDER
    message["To"] = "zoe@example.com"
    if message_id is not None:
        message["Message-ID"] = message_id
    message.attach(MIMEText(TEXT, "plain", "utf-8"))
    message.attach(MIMEText(HTML, "html", "utf-8"))
    return message.as_bytes()


def client(sink: SmtpSink) -> aiosmtplib.SMTP:
    return aiosmtplib.SMTP(hostname=sink.host, port=sink.port, start_tls=False, timeout=5)


async def send(sink: SmtpSink, data: bytes, recipient: str = "zoe@example.com") -> None:
    async with client(sink) as smtp:
        await smtp.sendmail(SENDER, [recipient], data)


def decoded_parts(message: Message) -> dict[str, str]:
    parts: dict[str, str] = {}
    for part in message.walk():
        if part.get_content_maintype() == "text":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            parts[part.get_content_type()] = payload.decode(part.get_content_charset() or "ascii")
    return parts


async def test_a_multipart_message_arrives_intact(smtp_sink: SmtpSink) -> None:
    await send(smtp_sink, multipart())

    [received] = smtp_sink.messages
    assert received.mail_from == SENDER
    assert received.recipients == ("zoe@example.com",)
    assert received.message_id == "<cadence.1@cadence.example>"
    parsed = email.message_from_bytes(received.data)
    assert parsed["Subject"] == "Your offer"
    assert decoded_parts(parsed) == {"text/plain": TEXT, "text/html": HTML}


@pytest.mark.parametrize(
    "body",
    [
        ".starts with a dot\r\n..two dots\r\nmiddle\r\n.\r\nafter a lone dot\r\n",
        "the last line is a lone dot\r\n.\r\n",
        "dots at line ends.\r\nend.\r\n.x\r\n",
        ".",
    ],
)
async def test_dot_stuffing_round_trips(smtp_sink: SmtpSink, body: str) -> None:
    data = f"Subject: dots\r\nMessage-ID: <dots@x>\r\n\r\n{body}".encode()
    await send(smtp_sink, data)

    # The client ends the data with CRLF when it does not already.
    expected = data if data.endswith(b"\r\n") else data + b"\r\n"
    assert smtp_sink.messages[0].data == expected


async def test_a_message_larger_than_one_read_arrives_whole(smtp_sink: SmtpSink) -> None:
    line = "x" * 70 + ".\r\n.y\r\n"  # a dot before every CRLF, a stuffed dot on every other line
    data = ("Subject: big\r\n\r\n" + line * 20_000).encode()  # ~1.5 MB
    await send(smtp_sink, data)

    assert smtp_sink.messages[0].data == data


async def test_a_message_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    async with SmtpSink(keep=True, max_message_bytes=1000) as sink:
        reader, writer = await asyncio.open_connection(sink.host, sink.port)

        async def command(line: bytes) -> bytes:
            writer.write(line)
            reply = b""
            while reply[3:4] != b" ":
                reply = await reader.readline()
            return reply

        assert (await reader.readline()).startswith(b"220")
        assert (await command(b"EHLO test\r\n")).startswith(b"250")
        assert (await command(b"MAIL FROM:<a@example.com>\r\n")).startswith(b"250")
        assert (await command(b"RCPT TO:<b@example.com>\r\n")).startswith(b"250")
        assert (await command(b"DATA\r\n")).startswith(b"354")
        assert (await command(b"x" * 5000 + b"\r\n.\r\n")).startswith(b"552")
        writer.close()
        assert sink.stats().received == 0


async def test_chosen_recipients_are_refused_and_the_others_accepted(
    smtp_sink: SmtpSink,
) -> None:
    smtp_sink.reject["gone@example.com"] = (550, "5.1.1 no such user")
    smtp_sink.reject["busy@example.com"] = (451, "4.7.1 try again in 30 seconds")

    async with client(smtp_sink) as smtp:
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as gone:
            await smtp.sendmail(SENDER, ["gone@example.com"], multipart())
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as busy:
            await smtp.sendmail(SENDER, ["Busy@Example.com"], multipart())
        await smtp.sendmail(SENDER, ["zoe@example.com"], multipart())

    assert (gone.value.recipients[0].code, gone.value.recipients[0].message) == (
        550,
        "5.1.1 no such user",
    )
    assert busy.value.recipients[0].code == 451
    assert [m.recipients for m in smtp_sink.messages] == [("zoe@example.com",)]
    assert smtp_sink.stats().rejected == 2


async def test_connections_are_dropped_after_every_n_messages(smtp_sink: SmtpSink) -> None:
    smtp_sink.drop_after = 2
    async with client(smtp_sink) as smtp:
        await smtp.sendmail(SENDER, ["a@example.com"], multipart("<1@x>"))
        await smtp.sendmail(SENDER, ["b@example.com"], multipart("<2@x>"))
        await asyncio.sleep(0.05)  # the close reaches the client
        with pytest.raises(aiosmtplib.SMTPServerDisconnected):
            await smtp.sendmail(SENDER, ["c@example.com"], multipart("<3@x>"))

    stats = smtp_sink.stats()
    assert (stats.received, stats.dropped) == (2, 1)


async def test_a_lost_reply_leaves_the_client_unsure_but_the_message_arrived(
    smtp_sink: SmtpSink,
) -> None:
    smtp_sink.drop_after = 1
    smtp_sink.lose_reply = True
    smtp = client(smtp_sink)
    await smtp.connect()
    with pytest.raises(aiosmtplib.SMTPServerDisconnected):
        await smtp.sendmail(SENDER, ["a@example.com"], multipart("<1@x>"))

    assert smtp_sink.stats().received == 1


async def test_duplicates_are_counted_by_message_id(smtp_sink: SmtpSink) -> None:
    async with client(smtp_sink) as smtp:
        for message_id in ["<1@x>", "<2@x>", "<1@x>", "<1@x>", None]:
            await smtp.sendmail(SENDER, ["a@example.com"], multipart(message_id))

    stats = smtp_sink.stats()
    assert (stats.received, stats.distinct, stats.duplicates) == (5, 2, 2)
    assert smtp_sink.message_ids == {"<1@x>": 3, "<2@x>": 1}
    assert stats.connections == 1


async def test_a_folded_message_id_is_read_whole(smtp_sink: SmtpSink) -> None:
    await send(smtp_sink, b"Subject: x\r\nMessage-ID:\r\n <folded@x>\r\n\r\nbody\r\n")

    assert smtp_sink.messages[0].message_id == "<folded@x>"


async def test_messages_are_stored_in_a_maildir(tmp_path: Path) -> None:
    async with SmtpSink(maildir=tmp_path / "mail") as sink:
        await send(sink, multipart("<1@x>"))
        await send(sink, multipart("<2@x>"))

    box = mailbox.Maildir(tmp_path / "mail", create=False)
    stored = sorted(box, key=lambda message: str(message["Message-ID"]))
    assert [message["Message-ID"] for message in stored] == ["<1@x>", "<2@x>"]
    assert decoded_parts(stored[0]) == {"text/plain": TEXT, "text/html": HTML}
    assert not any((tmp_path / "mail" / "tmp").iterdir())
    assert all(b"\r\n" not in path.read_bytes() for path in (tmp_path / "mail" / "new").iterdir())


async def test_a_message_the_maildir_cannot_take_is_refused_for_now(tmp_path: Path) -> None:
    async with SmtpSink(maildir=tmp_path / "mail") as sink:
        (tmp_path / "mail" / "new").rmdir()
        (tmp_path / "mail" / "new").write_text("not a folder")
        with pytest.raises(aiosmtplib.SMTPDataError) as refused:
            await send(sink, multipart())

    assert refused.value.code == 451
    assert refused.value.message.startswith("4.3.0 cannot store the message: Not a directory")
    assert sink.stats().received == 0
    assert not any((tmp_path / "mail" / "tmp").iterdir())


async def test_a_stopped_sink_closes_its_connections_and_starts_again_on_its_port() -> None:
    sink = SmtpSink(keep=True)
    await sink.start()
    port = sink.port
    smtp = client(sink)
    await smtp.connect()
    await smtp.sendmail(SENDER, ["a@example.com"], multipart("<1@x>"))
    await sink.stop()
    with pytest.raises(aiosmtplib.SMTPServerDisconnected):
        await smtp.sendmail(SENDER, ["a@example.com"], multipart("<2@x>"))
    with pytest.raises(aiosmtplib.SMTPConnectError):
        await client(sink).connect()

    await sink.start()
    try:
        assert sink.port == port
        await send(sink, multipart("<3@x>"))
    finally:
        await sink.stop()
    assert list(sink.message_ids) == ["<1@x>", "<3@x>"]


def test_cadence_sink_runs_as_a_command_and_writes_its_stats(tmp_path: Path) -> None:
    stats_file = tmp_path / "stats.json"
    command = [sys.executable, "-c", "from core.cli import main; main()", "sink"]
    options = ["--port", "0", "--maildir", str(tmp_path / "mail"), "--stats", str(stats_file)]
    process = subprocess.Popen(
        [*command, *options], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        listening = process.stdout.readline()
        assert listening.startswith("cadence sink listening on 127.0.0.1:")
        port = int(listening.split()[4].rstrip(",").rpartition(":")[2])
        aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False).sendmail_sync(
            SENDER, ["zoe@example.com"], multipart()
        )
        deadline = time.monotonic() + 10
        while not (stats_file.exists() and json.loads(stats_file.read_text())["received"]):
            assert time.monotonic() < deadline, "the stats file never counted the message"
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGTERM)
        output, errors = process.communicate(timeout=10)

    assert process.returncode == 0, errors
    assert "received 1 messages: 1 distinct Message-IDs, 0 duplicates" in output
    stats = json.loads(stats_file.read_text())
    assert (stats["received"], stats["distinct"], stats["duplicates"]) == (1, 1, 0)
    assert len(list((tmp_path / "mail" / "new").iterdir())) == 1
