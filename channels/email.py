"""The e-mail channel: a pool of persistent SMTP connections, one message at a time each.

An SMTP connection carries one transaction at a time, so throughput comes
from several connections side by side: :meth:`EmailChannel.send` lets each
of ``channels.email.connections`` connections take the batch's next message
as soon as it is free. Connections stay open between batches, reopen when
the server closed them, and are let go at :meth:`EmailChannel.close`.

A refused recipient costs only its own message (aiosmtplib resets the
transaction and the connection goes on). A server that cannot be reached
costs each connection one attempt: what no connection could send comes
back as "retry" at once, without waiting a timeout per message.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Sequence

import aiosmtplib

from channels.base import OutgoingMessage, Report, SendOutcome
from channels.mime import BuiltMessage, InvalidAddress, MessageBuilder
from channels.outcomes import Outcomes, error_text
from channels.smtp_replies import Stage, reply_outcome
from core.errors import ConfigError
from core.settings import EmailSettings, SmtpSettings


class _Unreachable(Exception):
    """The connection could not be opened (refused, timed out, TLS or login failed)."""


class _Lost(Exception):
    """The connection broke during a transaction; ``timed_out`` if the server went silent."""

    def __init__(self, reason: str, *, timed_out: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.timed_out = timed_out


class _Connection:
    """One persistent SMTP connection of the pool, opened when first needed."""

    def __init__(self, client: aiosmtplib.SMTP) -> None:
        self.client = client

    async def ready(self) -> None:
        """Open the connection unless it is open; :class:`_Unreachable` if it cannot be."""
        if self.client.is_connected:
            return
        try:
            await self.client.connect()
            # transmit() speaks the envelope itself, so greet here as sendmail() would.
            if self.client.is_ehlo_or_helo_needed:
                try:
                    await self.client.ehlo()
                except aiosmtplib.SMTPHeloError:
                    await self.client.helo()
        except (aiosmtplib.SMTPException, OSError) as exc:
            self.client.close()
            raise _Unreachable(error_text(exc)) from exc

    async def transmit(self, sender: bytes, message: BuiltMessage, outbox_id: int) -> SendOutcome:
        """Send one message; the server's answer as an outcome, :class:`_Lost` if none came.

        ``sender`` is the ``FROM:<address>`` argument of MAIL. The envelope is
        written with ``execute_command`` rather than ``sendmail``, which would
        parse and quote both addresses and measure the message once more for
        every send (a fifth of the channel's time per message): the builder has
        made the addresses plain ASCII ``local@domain`` and the bytes CRLF lines.
        """
        client = self.client
        status = aiosmtplib.SMTPStatus
        try:
            mail = [b"MAIL", sender]
            if client.supports_extension("size"):
                mail.append(b"SIZE=%d" % len(message.data))
            reply = await client.execute_command(*mail)
            if reply.code != status.completed:
                return await self._refused(outbox_id, reply, "mail")
            reply = await client.execute_command(b"RCPT", message.envelope_recipient)
            if reply.code not in (status.completed, status.will_forward):
                return await self._refused(outbox_id, reply, "rcpt")
            reply = await client.execute_command(b"DATA")
            if reply.code != status.start_input:
                return await self._refused(outbox_id, reply, "data")
            reply = await self._transfer(message)
            if reply.code != status.completed:
                return await self._refused(outbox_id, reply, "data")
        except (aiosmtplib.SMTPTimeoutError, TimeoutError) as exc:
            self.client.close()
            raise _Lost(error_text(exc), timed_out=True) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            self.client.close()
            raise _Lost(error_text(exc), timed_out=False) from exc
        return SendOutcome.sent(outbox_id)

    async def _transfer(self, message: BuiltMessage) -> aiosmtplib.SMTPResponse:
        """The message after a 354 and the server's verdict on it.

        ``SMTP.data`` would rewrite every line ending and search every line for a
        leading period with regular expressions (a sixth of the channel's time per
        message); the builder's bytes need neither, only the period doubling of
        :meth:`BuiltMessage.transmission`. One transaction at a time runs on a
        connection, so writing on its protocol cannot interleave with a command.
        """
        protocol = self.client.protocol
        if protocol is None:
            raise aiosmtplib.SMTPServerDisconnected("the connection closed during DATA")
        protocol.write(message.transmission())
        return await protocol.read_response(timeout=self.client.timeout)

    async def _refused(
        self, outbox_id: int, reply: aiosmtplib.SMTPResponse, stage: Stage
    ) -> SendOutcome:
        """The outcome of a refusal at ``stage``, after an RSET so the connection's next
        message starts a clean envelope (a connection the server closed is reopened)."""
        with contextlib.suppress(aiosmtplib.SMTPException, OSError):
            await self.client.rset()
        return reply_outcome(outbox_id, reply.code, reply.message, stage)

    async def close(self) -> None:
        if not self.client.is_connected:
            return
        try:
            await self.client.quit()
        except (aiosmtplib.SMTPException, OSError):
            pass  # the server went away first: nothing left to be polite to
        finally:
            self.client.close()


class EmailChannel:
    """Sends e-mail through ``smtp`` with ``email.connections`` persistent connections."""

    name = "email"

    def __init__(self, smtp: SmtpSettings, email: EmailSettings) -> None:
        if smtp.tls and smtp.starttls:
            raise ConfigError(
                "smtp.tls (TLS from the start, port 465) and smtp.starttls (upgrade, port 587) "
                "exclude each other; set only one"
            )
        self.builder = MessageBuilder(email)
        self.server = f"{smtp.host}:{smtp.port}"
        self._pool = [_Connection(_client(smtp)) for _ in range(email.connections)]
        self._idle: asyncio.Queue[_Connection] | None = None

    async def open(self) -> None:
        """Open every connection of the pool side by side.

        A server that is down now is not an error here: the connections are
        tried again with each batch, and its messages wait as "retry".
        """
        idle = self._idle_connections()
        taken = [idle.get_nowait() for _ in range(idle.qsize())]
        try:
            await asyncio.gather(*(_open_quietly(connection) for connection in taken))
        finally:
            for connection in taken:
                idle.put_nowait(connection)

    async def send(
        self, batch: Sequence[OutgoingMessage], report: Report | None = None
    ) -> list[SendOutcome]:
        outcomes = Outcomes(report)
        pending: deque[tuple[OutgoingMessage, BuiltMessage]] = deque()
        for message in batch:
            try:
                pending.append((message, self.builder.build(message)))
            except InvalidAddress as exc:
                await outcomes.add(SendOutcome.failed(message.outbox_id, str(exc)))
        if not pending:
            return outcomes.all
        resent: set[int] = set()
        unreachable: list[str] = []
        idle = self._idle_connections()

        async def drain() -> None:
            connection = await idle.get()
            try:
                await self._drain(connection, pending, outcomes, resent)
            except _Unreachable as exc:
                unreachable.append(str(exc))
            finally:
                idle.put_nowait(connection)

        await asyncio.gather(*(drain() for _ in range(min(len(self._pool), len(pending)))))
        reason = f"cannot connect to the SMTP server at {self.server}: " + (
            unreachable[-1] if unreachable else "no connection"
        )
        while pending:
            message, _ = pending.popleft()
            await outcomes.add(SendOutcome.retry(message.outbox_id, reason))
        return outcomes.all

    async def _drain(
        self,
        connection: _Connection,
        pending: deque[tuple[OutgoingMessage, BuiltMessage]],
        outcomes: Outcomes,
        resent: set[int],
    ) -> None:
        """Send ``pending`` messages over ``connection`` until none is left or it fails."""
        sender = b"FROM:<%s>" % self.builder.sender.encode("ascii")
        while pending:
            message, built = pending.popleft()
            try:
                await connection.ready()
            except _Unreachable:
                # Leave the message to a connection that works; none may.
                pending.appendleft((message, built))
                raise
            try:
                outcome = await connection.transmit(sender, built, message.outbox_id)
            except _Lost as lost:
                if lost.timed_out or message.outbox_id in resent:
                    await outcomes.add(SendOutcome.retry(message.outbox_id, lost.reason))
                else:
                    # Most often the server had closed an idle or worn-out connection;
                    # once more on a fresh one. Had the server taken the message before
                    # the break, it arrives twice, with the same Message-ID.
                    resent.add(message.outbox_id)
                    pending.appendleft((message, built))
            else:
                # The report comes before this connection's next message (see Channel.send).
                await outcomes.add(outcome)

    async def close(self) -> None:
        """Wait for the connections in use, then say QUIT on each."""
        idle = self._idle_connections()
        taken = [await idle.get() for _ in self._pool]
        try:
            await asyncio.gather(*(connection.close() for connection in taken))
        finally:
            for connection in taken:
                idle.put_nowait(connection)

    def _idle_connections(self) -> asyncio.Queue[_Connection]:
        # Created on first use, inside the event loop that will run the channel.
        if self._idle is None:
            self._idle = asyncio.Queue()
            for connection in self._pool:
                self._idle.put_nowait(connection)
        return self._idle


def build_message(message: OutgoingMessage, email: EmailSettings) -> bytes:
    """The bytes the channel sends for ``message`` (for previews and benchmark floors);
    :class:`channels.mime.InvalidAddress` when its address is not usable."""
    return MessageBuilder(email).build(message).data


async def _open_quietly(connection: _Connection) -> None:
    # See EmailChannel.open: a connection that fails now is tried again with each batch.
    with contextlib.suppress(_Unreachable):
        await connection.ready()


def _client(smtp: SmtpSettings) -> aiosmtplib.SMTP:
    return aiosmtplib.SMTP(
        hostname=smtp.host,
        port=smtp.port,
        username=smtp.username,
        password=smtp.password.get_secret_value() if smtp.password is not None else None,
        local_hostname=smtp.local_hostname,
        timeout=smtp.timeout_seconds,
        use_tls=smtp.tls,
        start_tls=smtp.starttls,
        validate_certs=smtp.validate_certs,
    )
