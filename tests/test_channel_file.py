"""The file channel (JSON lines or a maildir) and how channels are built from settings."""

from __future__ import annotations

import email
import email.policy
import json
import mailbox
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

import pytest

from channels import open_channels
from channels.base import OutgoingMessage, SendOutcome
from channels.email import EmailChannel
from channels.file import FileChannel
from channels.in_app import InAppChannel
from channels.sms import SmsChannel
from channels.webhook import WebhookChannel
from core import clock
from core.db import Store
from core.errors import ConfigError
from core.settings import EmailSettings, Settings
from tests.channel_helpers import outgoing
from tests.conftest import NOW


def message(outbox_id: int, **fields: Any) -> OutgoingMessage:
    return outgoing(outbox_id, name="Zoë", subject="Olá", **fields)


async def test_jsonl_appends_one_object_per_message(
    tmp_path: Path, frozen_clock: clock.FixedClock
) -> None:
    path = tmp_path / "out" / "outbox.jsonl"
    channel = FileChannel(path, "jsonl", EmailSettings())
    await channel.open()
    assert await channel.send([message(1), message(2)]) == [
        SendOutcome.sent(1),
        SendOutcome.sent(2),
    ]
    await channel.close()
    again = FileChannel(path, "jsonl", EmailSettings())
    reported: list[SendOutcome] = []

    async def report(outcome: SendOutcome) -> None:
        reported.append(outcome)

    assert await again.send([message(3)], report) == reported == [SendOutcome.sent(3)]
    await again.close()

    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [
        {**asdict(message(n)), "written_at": NOW.isoformat()} for n in (1, 2, 3)
    ]
    assert "Olá" in lines[0], "kept readable, not escaped"


async def test_maildir_stores_each_message_as_the_email_channel_builds_it(
    tmp_path: Path,
) -> None:
    channel = FileChannel(tmp_path / "mail", "maildir", EmailSettings())
    await channel.open()
    outcomes = await channel.send([message(1), message(2, address="bad address"), message(3)])
    await channel.close()

    assert outcomes == [
        SendOutcome.sent(1),
        SendOutcome.failed(2, "invalid address"),
        SendOutcome.sent(3),
    ]
    box = mailbox.Maildir(tmp_path / "mail", create=False)
    files = sorted(box.iterkeys())
    assert len(files) == 2
    stored = [
        email.message_from_bytes(box.get_bytes(key), policy=email.policy.default) for key in files
    ]
    assert sorted(str(m["Message-ID"]) for m in stored) == [
        "<cadence.1@cadence.example>",
        "<cadence.3@cadence.example>",
    ]
    assert {str(m["Subject"]) for m in stored} == {"Olá"}
    assert all(m["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click" for m in stored)
    assert all(b"\r\n" not in box.get_bytes(key) for key in files)


@pytest.mark.parametrize("shape", ["jsonl", "maildir"])
async def test_a_path_that_cannot_be_written_is_a_configuration_error(
    tmp_path: Path, shape: Literal["jsonl", "maildir"]
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    channel = FileChannel(blocker / "outbox", shape, EmailSettings())

    with pytest.raises(ConfigError, match=f"the file channel cannot write to {blocker}"):
        await channel.open()


async def test_a_full_disk_means_retry() -> None:
    channel = FileChannel(Path("/dev/full"), "jsonl", EmailSettings())

    outcomes = await channel.send([message(1), message(2)])
    await channel.close()

    assert [outcome.status for outcome in outcomes] == ["retry", "retry"]
    assert str(outcomes[0].reason) == (
        "cannot write to /dev/full: OSError: [Errno 28] No space left on device"
    )


async def test_channels_are_built_from_the_settings(store: Store, settings: Settings) -> None:
    settings = settings.model_copy(
        update={
            "channels": settings.channels.model_copy(
                update={
                    "file": settings.channels.file.model_copy(update={"path": Path("dry.jsonl")})
                }
            )
        }
    )

    channels = open_channels(settings, store, ["email", "sms", "webhook", "in_app", "file"])

    assert {name: type(channel) for name, channel in channels.items()} == {
        "email": EmailChannel,
        "sms": SmsChannel,
        "webhook": WebhookChannel,
        "in_app": InAppChannel,
        "file": FileChannel,
    }
    assert all(channel.name == name for name, channel in channels.items())
    file_channel = channels["file"]
    assert isinstance(file_channel, FileChannel)
    assert file_channel.path == settings.config_dir / "dry.jsonl"
    assert open_channels(settings, store, []) == {}


async def test_an_unknown_channel_name_is_a_configuration_error(
    store: Store, settings: Settings
) -> None:
    with pytest.raises(ConfigError, match="unknown channel 'pigeon'; the channels are email, sms"):
        open_channels(settings, store, ["email", "pigeon"])
