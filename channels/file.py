"""The file channel, for dry runs and the demo: messages written out instead of sent.

``jsonl`` appends one JSON object per message to a file, made durable once
per batch (one unbuffered write, then fsync: a failed write leaves nothing
behind to be written twice). ``maildir`` stores each message as the
e-mail the e-mail channel would have sent (same builder), one file each,
readable with any mail reader. The writing runs in a thread, so a slow disk
never stalls the event loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import mailbox
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from channels.base import OutgoingMessage, Report, SendOutcome
from channels.mime import InvalidAddress, MessageBuilder
from channels.outcomes import Outcomes, error_text
from core import clock
from core.errors import ConfigError
from core.settings import EmailSettings


class FileChannel:
    """Writes messages to ``path``: a JSON-lines file or a maildir folder."""

    name = "file"

    def __init__(
        self, path: Path, format: Literal["jsonl", "maildir"], email: EmailSettings
    ) -> None:
        self.path = path
        self.format = format
        self._email = email
        self._builder: MessageBuilder | None = None
        self._lines: int | None = None
        """The JSON-lines file's descriptor, open for appending."""
        self._maildir: mailbox.Maildir | None = None

    async def open(self) -> None:
        try:
            if self.format == "maildir":
                self._builder = MessageBuilder(self._email)
                self._maildir = await asyncio.to_thread(self._open_maildir)
            else:
                self._lines = await asyncio.to_thread(self._open_lines)
        except OSError as exc:
            raise ConfigError(
                f"the file channel cannot write to {self.path}: {exc.strerror}; set "
                "channels.file.path to a place this user may write"
            ) from None

    async def send(
        self, batch: Sequence[OutgoingMessage], report: Report | None = None
    ) -> list[SendOutcome]:
        if self._lines is None and self._maildir is None:
            await self.open()
        outcomes = Outcomes(report)
        try:
            written = await asyncio.to_thread(self._write, batch)
        except OSError as exc:
            reason = f"cannot write to {self.path}: {error_text(exc)}"
            for message in batch:
                await outcomes.add(SendOutcome.retry(message.outbox_id, reason))
            return outcomes.all
        await outcomes.add_all(written)  # one write holds them all
        return outcomes.all

    async def close(self) -> None:
        lines, self._lines = self._lines, None
        self._maildir = None
        if lines is not None:
            os.close(lines)

    def _open_lines(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _open_maildir(self) -> mailbox.Maildir:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return mailbox.Maildir(self.path, create=True)

    def _write(self, batch: Sequence[OutgoingMessage]) -> list[SendOutcome]:
        if self._maildir is not None:
            return [self._store(self._maildir, message) for message in batch]
        assert self._lines is not None
        written_at = clock.now().isoformat()
        lines = b"".join(
            json.dumps(
                {**dataclasses.asdict(message), "written_at": written_at}, ensure_ascii=False
            ).encode()
            + b"\n"
            for message in batch
        )
        with memoryview(lines) as rest:
            while rest:
                rest = rest[os.write(self._lines, rest) :]
        os.fsync(self._lines)
        return [SendOutcome.sent(message.outbox_id) for message in batch]

    def _store(self, maildir: mailbox.Maildir, message: OutgoingMessage) -> SendOutcome:
        assert self._builder is not None
        try:
            built = self._builder.build(message)
        except InvalidAddress as exc:
            return SendOutcome.failed(message.outbox_id, str(exc))
        # Files in a maildir use the local line ending, as mail readers expect.
        maildir.add(built.data.replace(b"\r\n", b"\n"))
        return SendOutcome.sent(message.outbox_id)
