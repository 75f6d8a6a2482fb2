"""The outbox as the console reads it, on both databases: the latest messages (all, or in
one state), and a message rendered again equal to what the channel was handed."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from core.db import Store
from core.message_ids import message_id_domain, message_id_for
from core.models import Customer, OutboxMessage
from core.outbox_view import message_as_sent, outbox_entry, recent_outbox_messages
from core.settings import Settings
from core.templates import Templates
from tests.conftest import NOW
from tests.outbox_world import deliver_to_file


async def test_recent_messages_newest_first_or_in_one_state_latest_due_first(
    store: Store, settings: Settings
) -> None:
    world = await deliver_to_file(store, settings, NOW)
    async with store.transaction() as session:
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == world.sent[1])
            .values(state="failed", error="550 no such mailbox")
        )
    async with store.reading() as session:
        everything = await recent_outbox_messages(session)
        newest_two = await recent_outbox_messages(session, limit=2)
        sent = await recent_outbox_messages(session, state="sent")
        failed = await recent_outbox_messages(session, state="failed")
        queued = await recent_outbox_messages(session, state="queued")
        nothing = await recent_outbox_messages(session, state="control")
    assert [entry.id for entry in everything] == sorted(world.sent + world.queued, reverse=True)
    assert [entry.id for entry in newest_two] == sorted(world.queued, reverse=True)
    assert [entry.id for entry in sent] == [world.sent[2], world.sent[0]]
    assert [(entry.customer, entry.error) for entry in failed] == [("bob", "550 no such mailbox")]
    assert [entry.due_at for entry in queued] == [NOW + timedelta(hours=1)] * 2
    assert nothing == []
    first = sent[-1]
    assert (first.campaign, first.customer, first.channel, first.variant) == (
        "cross-sell-test",
        "ada",
        "file",
        "cross_sell",
    )
    assert (first.state, first.sent_at, first.attempts) == ("sent", NOW, 1)


async def test_a_sent_message_renders_again_as_the_channel_received_it(
    store: Store, settings: Settings
) -> None:
    world = await deliver_to_file(store, settings, NOW)
    templates = Templates(settings.resolve(settings.templates_dir), settings.templates)
    for outbox_id in world.sent:
        shown = await message_as_sent(store, settings, templates, outbox_id)
        assert shown is not None and shown.message is not None
        written = world.written[outbox_id]
        message = shown.message
        assert message.message_id == message_id_for(
            outbox_id, message_id_domain(settings.channels.email)
        )
        assert message.html is not None and "<" in message.html
        as_written = {key: written[key] for key in ("message_id", "address", "subject", "text")}
        assert as_written == {
            "message_id": message.message_id,
            "address": message.address,
            "subject": message.subject,
            "text": message.text,
        }
        assert written["html"] == message.html, "links signed as of sent_at are those sent"
        assert shown.rendered_at == NOW and shown.withheld is None
    async with store.reading() as session:
        assert await outbox_entry(session, 10**9) is None
    assert await message_as_sent(store, settings, templates, 10**9) is None


async def test_a_message_delivery_would_not_send_now_says_why(
    store: Store, settings: Settings
) -> None:
    world = await deliver_to_file(store, settings, NOW)
    async with store.transaction() as session:
        await session.execute(
            update(Customer).where(Customer.external_id == "ada").values(consent_email=False)
        )
    templates = Templates(settings.resolve(settings.templates_dir), settings.templates)
    shown = await message_as_sent(store, settings, templates, world.queued[0])
    assert shown is not None and shown.message is None
    assert shown.withheld is not None and "consent" in shown.withheld
