"""A local SMTP server that keeps what it receives: the mail sink of the demo and the tests.

:class:`SmtpSink` is a real aiosmtpd server on loopback. It counts what
arrives (messages, distinct Message-IDs, duplicates: the same Message-ID
received again), can keep the messages in memory for a test to read, and
can store each one as a file in a maildir. For the reliability tests it
can refuse chosen recipients with a given reply and drop every connection
after a number of messages, before or after the reply.

The stock aiosmtpd server reads DATA one line at a time, which costs more
than everything else a message takes; :class:`_SinkSMTP` reads up to each
``.<CRLF>`` instead and undoes the dot-stuffing in one pass.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from itertools import count
from pathlib import Path

from aiosmtpd.smtp import SMTP, Envelope, Session

_END_OF_DATA = b".\r\n"
_READ_LIMIT = 256 * 1024
"""The reader's buffer limit: how much of a message one read may take at once."""
_MAX_MESSAGE_BYTES = 32 * 1024 * 1024
_PLAIN_PATH = re.compile(r"\s*<([A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+)>(.*)", re.DOTALL)
"""``<local@domain>`` and what follows, as nearly every client writes MAIL and RCPT."""
_MESSAGE_ID = re.compile(
    rb"^message-id:[ \t]*((?:[^\r\n]|\r\n[ \t])*)", re.IGNORECASE | re.MULTILINE
)


@dataclass(frozen=True, slots=True)
class SinkStats:
    """What a sink has received so far."""

    received: int
    """Messages accepted (250 after DATA)."""
    distinct: int
    """Different Message-IDs among them (a message without one is not counted)."""
    duplicates: int
    """Messages whose Message-ID had arrived before."""
    rejected: int
    """Recipients refused on purpose (:attr:`SmtpSink.reject`)."""
    dropped: int
    """Connections closed on purpose (:attr:`SmtpSink.drop_after`)."""
    connections: int
    """Connections accepted."""

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """One message as the sink took it in, kept when the sink was asked to keep them."""

    mail_from: str
    recipients: tuple[str, ...]
    data: bytes
    """The message as sent, CRLF line endings, dot-stuffing undone."""
    message_id: str | None


class SmtpSink:
    """A local SMTP server that accepts every message (unless told to refuse some).

    ``port=0`` takes a free port; :attr:`port` tells which once started.
    ``reject``, ``drop_after`` and ``lose_reply`` are plain attributes a test
    may change while the sink runs.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        maildir: Path | None = None,
        keep: bool = False,
        reject: Mapping[str, tuple[int, str]] | None = None,
        drop_after: int | None = None,
        lose_reply: bool = False,
        max_message_bytes: int = _MAX_MESSAGE_BYTES,
        hostname: str = "cadence-sink",
    ) -> None:
        self.host = host
        self.port = port
        self.maildir = maildir
        self.keep = keep
        self.reject: dict[str, tuple[int, str]] = dict(reject or {})
        """Recipients refused at RCPT, by address (as given, or in lower case): ``(code,
        text)``, e.g.
        ``(550, "5.1.1 no such user")`` or ``(451, "try again in 30 seconds")``."""
        self.drop_after = drop_after
        """Close each connection once it has accepted this many messages (None: never)."""
        self.lose_reply = lose_reply
        """With ``drop_after``: close before the 250 reply instead of after, so the client
        cannot know that the last message arrived and sends it again."""
        self.max_message_bytes = max_message_bytes
        """Larger messages are refused (552), as the EHLO reply's SIZE announces."""
        self.hostname = hostname
        self.messages: list[ReceivedMessage] = []
        self.message_ids: Counter[str] = Counter()
        self._received = 0
        self._rejected = 0
        self._dropped = 0
        self._connections_made = 0
        self._server: asyncio.Server | None = None
        self._connections: set[_SinkSMTP] = set()
        self._handler = _SinkHandler(self)
        self._file_names = count()
        self._file_suffix = f"{os.getpid()}_{id(self):x}.{socket.gethostname()}"

    async def start(self) -> None:
        """Listen on :attr:`host` and :attr:`port` (a free one if 0)."""
        if self._server is not None:
            return
        if self.maildir is not None:
            for folder in ("tmp", "new", "cur"):
                (self.maildir / folder).mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _SinkSMTP(self, loop), self.host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and close every open connection; the counters stay."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for connection in list(self._connections):
            connection.disconnect()
        await server.wait_closed()

    async def __aenter__(self) -> SmtpSink:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def stats(self) -> SinkStats:
        distinct = len(self.message_ids)
        return SinkStats(
            received=self._received,
            distinct=distinct,
            duplicates=sum(self.message_ids.values()) - distinct,
            rejected=self._rejected,
            dropped=self._dropped,
            connections=self._connections_made,
        )

    def refusal(self, address: str) -> str | None:
        """The reply refusing ``address`` at RCPT, or None to accept it."""
        reply = self.reject.get(address) or self.reject.get(address.lower())
        if reply is None:
            return None
        self._rejected += 1
        code, text = reply
        return f"{code} {text}"

    async def receive(self, mail_from: str, recipients: tuple[str, ...], data: bytes) -> None:
        """Store, count and keep one message that arrived; OSError if it cannot be stored.

        The file is written in a thread: the other connections go on meanwhile,
        and a disk that stalls slows down only the message waiting for it.
        """
        if self.maildir is not None:
            await asyncio.to_thread(self._store, data)
        self._received += 1
        message_id = _message_id_of(data)
        if message_id is not None:
            self.message_ids[message_id] += 1
        if self.keep:
            self.messages.append(ReceivedMessage(mail_from, recipients, data, message_id))

    def should_drop(self, accepted_on_connection: int) -> bool:
        drop = self.drop_after is not None and accepted_on_connection % self.drop_after == 0
        if drop:
            self._dropped += 1
        return drop

    def _store(self, data: bytes) -> None:
        # Maildir delivery: written under tmp/, then renamed into new/, so a reader never
        # sees half a message. Files use the local line ending, as mail readers expect.
        name = f"{next(self._file_names)}.{self._file_suffix}"
        assert self.maildir is not None
        temporary = self.maildir / "tmp" / name
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(descriptor, data.replace(b"\r\n", b"\n"))
        finally:
            os.close(descriptor)
        try:
            os.rename(temporary, self.maildir / "new" / name)
        except OSError:
            temporary.unlink()
            raise

    def _opened(self, connection: _SinkSMTP) -> None:
        self._connections_made += 1
        self._connections.add(connection)

    def _closed(self, connection: _SinkSMTP) -> None:
        self._connections.discard(connection)


def _message_id_of(data: bytes) -> str | None:
    end = data.find(b"\r\n\r\n")
    match = _MESSAGE_ID.search(data, 0, end if end >= 0 else len(data))
    if match is None:
        return None
    value = match.group(1).replace(b"\r\n", b"").strip()
    return value.decode("ascii", "replace") or None


class _SinkHandler:
    """The aiosmtpd hooks: refuse the recipients the sink was told to, take the rest."""

    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        refusal = self.sink.refusal(address)
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.original_content, bytes)
        try:
            await self.sink.receive(
                envelope.mail_from or "", tuple(envelope.rcpt_tos), envelope.original_content
            )
        except OSError as exc:
            # What a mail server says when its disk fails it: try again later.
            return f"451 4.3.0 cannot store the message: {exc.strerror or exc}"
        return "250 OK: queued"


class _SinkSMTP(SMTP):
    """aiosmtpd's server with a DATA command that reads whole stretches, not lines."""

    line_length_limit = _READ_LIMIT

    def __init__(self, sink: SmtpSink, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(
            sink._handler,
            hostname=sink.hostname,
            data_size_limit=sink.max_message_bytes,
            loop=loop,
        )
        self.sink = sink
        self.accepted = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.sink._opened(self)

    def connection_lost(self, error: Exception | None) -> None:
        self.sink._closed(self)
        super().connection_lost(error)

    def disconnect(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        # aiosmtpd parses every path with the e-mail package's header parser, which costs
        # as much as the rest of the transaction; plain <local@domain> needs a regex.
        plain = _PLAIN_PATH.fullmatch(arg) if not self.local_part_limit else None
        if plain is None:
            return super()._getaddr(arg)
        return plain.group(1), plain.group(2)

    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        data = await self._read_data()
        if data is None:
            await self.push("552 Error: Too much mail data")
            self._set_post_data_state()  # type: ignore[no-untyped-call]
            return
        self.envelope.content = self.envelope.original_content = data
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()  # type: ignore[no-untyped-call]
        self.accepted += 1
        if not self.sink.should_drop(self.accepted):
            await self.push(status)
        elif self.sink.lose_reply:
            self.disconnect()
        else:
            await self.push(status)
            self.disconnect()

    async def _read_data(self) -> bytes | None:
        """The message up to the lone ``.`` line, unstuffed; None when it is too large."""
        limit = self.sink.max_message_bytes
        stretches: list[bytes] = []
        size = 0
        tail = b"\r\n"  # the data starts a line: ".\r\n" first thing ends it
        while True:
            try:
                stretch = await self._reader.readuntil(_END_OF_DATA)
            except asyncio.LimitOverrunError as overrun:
                # No terminator within the limit: take what was scanned and read on; the
                # last two bytes stay buffered, so a terminator across the cut is found.
                stretch = await self._reader.read(overrun.consumed)
                ended = False
            else:
                before = (tail + stretch[:-3])[-2:] if len(stretch) < 5 else stretch[-5:-3]
                ended = before == b"\r\n"
            size += len(stretch)
            if size <= limit:
                stretches.append(stretch)
            if ended:
                break
            tail = (tail + stretch)[-2:]
        if size > limit:
            return None
        data = b"".join(stretches)[:-3]
        if data.startswith(b"."):
            data = data[1:]
        return data.replace(b"\r\n.", b"\r\n")
