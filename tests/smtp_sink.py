"""A real SMTP server on a free loopback port, for any test that sends mail.

Import the fixture into a test module (``from tests.smtp_sink import smtp_sink``)
and take ``smtp_sink``: a started :class:`core.sink.SmtpSink` that keeps every
message it receives (``smtp_sink.messages``), stopped after the test. Its
``reject``, ``drop_after`` and ``lose_reply`` may be set during the test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from core.settings import SmtpSettings
from core.sink import SmtpSink


@pytest.fixture
async def smtp_sink() -> AsyncIterator[SmtpSink]:
    """A started sink on a free port that keeps its messages."""
    async with SmtpSink(keep=True) as sink:
        yield sink


def smtp_settings_for(sink: SmtpSink, **fields: object) -> SmtpSettings:
    """SMTP settings that reach ``sink``, with a short timeout (tests never wait long)."""
    values: dict[str, object] = {"host": sink.host, "port": sink.port, "timeout_seconds": 5.0}
    values.update(fields)
    return SmtpSettings.model_validate(values)
