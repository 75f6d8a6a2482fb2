"""Delivery adapters (SMTP, SMS, webhook, in-app, file) behind one small protocol."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from channels.base import Channel
from channels.email import EmailChannel
from channels.file import FileChannel
from channels.in_app import InAppChannel
from channels.sms import SmsChannel
from channels.webhook import WebhookChannel
from core.db import Store
from core.errors import ConfigError
from core.program.model import CHANNEL_NAMES
from core.settings import Settings


def open_channels(settings: Settings, store: Store, names: Iterable[str]) -> dict[str, Channel]:
    """The channels called ``names``, built from ``settings`` (the caller opens them)."""
    channels = settings.channels
    makers: dict[str, Callable[[], Channel]] = {
        "email": lambda: EmailChannel(settings.smtp, channels.email),
        "sms": lambda: SmsChannel(channels.sms),
        "webhook": lambda: WebhookChannel(channels.webhook),
        "in_app": lambda: InAppChannel(store),
        "file": lambda: FileChannel(
            settings.resolve(channels.file.path), channels.file.format, channels.email
        ),
    }
    built: dict[str, Channel] = {}
    for name in names:
        if name not in makers:
            raise ConfigError(
                f"unknown channel {name!r}; the channels are {', '.join(CHANNEL_NAMES)}"
            )
        built[name] = makers[name]()
    return built


__all__ = ["open_channels"]
