"""Outbox rows written straight to the store, for delivery tests: a run of a campaign with
one queued message per customer."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select

from config import DEFAULT_CONFIG_DIR
from core import clock
from core.db import Store
from core.models import CampaignRun, OutboxMessage
from core.settings import Settings
from core.workers import run_delivery
from tests.planner_world import Person, add_campaign, add_people, campaign_spec


async def queue_messages(
    store: Store,
    campaign_id: int,
    customer_ids: Sequence[int],
    now: datetime,
    *,
    channel: str = "email",
    category: str = "marketing",
    variant: str = "offer_a",
    run_key: str = "test-run",
    due_at: datetime | None = None,
) -> list[int]:
    """A planned run of ``campaign_id`` with a queued message for each customer; the
    messages' ids, in customer order."""
    async with store.transaction() as session:
        run = CampaignRun(
            campaign_id=campaign_id,
            run_key=run_key,
            occasion="manual",
            status="planned",
            due_at=now,
            planned_at=now,
            targeted=len(customer_ids),
            queued=len(customer_ids),
            outcomes={},
        )
        session.add(run)
        await session.flush()
        if customer_ids:
            await session.execute(
                insert(OutboxMessage),
                [
                    {
                        "run_id": run.id,
                        "campaign_id": campaign_id,
                        "customer_id": customer_id,
                        "channel": channel,
                        "category": category,
                        "variant": variant,
                        "state": "queued",
                        "due_at": due_at or now,
                        "created_at": now,
                    }
                    for customer_id in customer_ids
                ],
            )
        ids = await session.execute(
            select(OutboxMessage.id)
            .where(OutboxMessage.run_id == run.id)
            .order_by(OutboxMessage.customer_id)
        )
        return list(ids.scalars())


async def outbox_states(store: Store) -> dict[int, tuple[str, str | None]]:
    """Every message's state and error, by id."""
    async with store.reading() as session:
        rows = await session.execute(
            select(OutboxMessage.id, OutboxMessage.state, OutboxMessage.error)
        )
        return {row_id: (state, error) for row_id, state, error in rows}


@dataclass(frozen=True)
class FileOutbox:
    """Messages delivered through the file channel, and what it wrote for each."""

    sent: list[int]
    """The sent messages' ids, in customer order."""
    queued: list[int]
    """Messages of a later run, still waiting (due an hour later)."""
    written: dict[int, dict[str, Any]]
    """The JSON-lines record the channel wrote, by outbox id."""


async def deliver_to_file(store: Store, settings: Settings, now: datetime) -> FileOutbox:
    """Three people sent the ``cross_sell`` e-mail template (subject, text and HTML) on the
    file channel at ``now`` by the real delivery worker, and two more messages queued."""
    settings.templates_dir = DEFAULT_CONFIG_DIR / "templates"
    people = [Person("ada"), Person("bob"), Person("cy")]
    ids = await add_people(store, people, now)
    spec = campaign_spec("cross-sell-test", "everyone", channel="file", variants=["cross_sell"])
    campaign = await add_campaign(store, spec, now)
    customers = [ids[person.key] for person in people]
    sent = await queue_messages(
        store, campaign, customers, now, channel="file", variant="cross_sell"
    )
    with clock.using(clock.FixedClock(now)):
        stats = await run_delivery(
            store, settings, channels=["file"], until_idle=True, serve_http=False
        )
    assert stats.sent == len(sent)
    queued = await queue_messages(
        store,
        campaign,
        customers[:2],
        now,
        channel="file",
        variant="cross_sell",
        run_key="later-run",
        due_at=now + timedelta(hours=1),
    )
    path = settings.resolve(settings.channels.file.path)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    return FileOutbox(sent, queued, {record["outbox_id"]: record for record in records})
