"""Real delivery for the console's tests: the shipped templates, and the delivery workers
sending the outbox's e-mail to a real SMTP sink, as ``cadence demo`` does."""

from __future__ import annotations

from config import DEFAULT_CONFIG_DIR
from core.db import Store
from core.delivery import DeliveryStats
from core.settings import Settings
from core.sink import SmtpSink
from core.workers import run_delivery
from tests.smtp_sink import smtp_settings_for


def with_templates(settings: Settings) -> Settings:
    """``settings`` reading the shipped templates, as the default program needs."""
    settings.templates_dir = DEFAULT_CONFIG_DIR / "templates"
    return settings


async def deliver_email(store: Store, settings: Settings, sink: SmtpSink) -> DeliveryStats:
    """The delivery workers (:func:`core.workers.run_delivery`) on e-mail until nothing is
    left to send now, sending to ``sink``."""
    return await run_delivery(
        store,
        settings.model_copy(update={"smtp": smtp_settings_for(sink)}),
        channels=["email"],
        until_idle=True,
        serve_http=False,
    )
