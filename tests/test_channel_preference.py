"""Channel preference: the channel each customer answers best on, never one the policy
forbids for them, and campaigns with ``channel = "preferred"`` that use it."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import insert, select, update

from config import DEFAULT_CONFIG_DIR
from core.db import Store
from core.db.bulk import store_events
from core.intel.channel_preference import PRIOR_MESSAGES, refresh_channel_preferences
from core.message_events import message_event
from core.models import Customer, CustomerChannel, OutboxMessage
from core.planner.launch import run_campaign_now
from core.policy import Outcome
from core.program import load_program
from core.settings import Settings
from tests.conftest import NOW
from tests.outbox_world import queue_messages
from tests.planner_world import (
    Person,
    add_campaign,
    add_people,
    add_segment,
    address_of,
    campaign_spec,
    suppress,
)
from tests.test_program_campaigns import TEMPLATES, _folder, _problems

DAY = timedelta(days=1)
PHONE = "+351900000000"


def _person(key: str, **fields: object) -> Person:
    values: dict[str, object] = {"phone": PHONE, "consent_sms": True, **fields}
    return Person(key, **values)  # type: ignore[arg-type]


async def _sent(
    store: Store, campaign_id: int, customers: list[int], channel: str, at: datetime
) -> dict[int, int]:
    """Messages on ``channel`` sent at ``at``; their ids by customer."""
    key = f"{channel}-{at.isoformat()}"
    ids = await queue_messages(store, campaign_id, customers, at, channel=channel, run_key=key)
    async with store.transaction() as session:
        await session.execute(
            update(OutboxMessage).where(OutboxMessage.id.in_(ids)).values(state="sent", sent_at=at)
        )
    return dict(zip(customers, ids, strict=True))


async def _events(store: Store, rows: list[tuple[int, str, datetime, int | None]]) -> None:
    events = [
        message_event(
            customer,
            kind,
            at,
            {} if outbox_id is None else {"outbox_id": outbox_id},
            source="test",
        )
        for customer, kind, at, outbox_id in rows
    ]
    async with store.transaction() as session:
        await store_events(session, events, NOW)


async def _preferences(store: Store) -> dict[str, CustomerChannel]:
    async with store.reading() as session:
        rows = await session.execute(
            select(Customer.external_id, CustomerChannel).join(
                CustomerChannel, CustomerChannel.customer_id == Customer.id
            )
        )
        return {key: row for key, row in rows}


async def test_the_best_responding_channel_the_policy_allows(store: Store) -> None:
    people = [
        _person("email-fan"),
        _person("sms-fan"),
        _person("no-sms", consent_sms=False),
        _person("bounced"),
        _person("quiet"),
        _person("nobody", consent_email=False, consent_sms=None),
    ]
    ids = await add_people(store, people, NOW)
    await suppress(store, str(address_of(people[3])), "hard_bounce", NOW)
    campaign = await add_campaign(store, campaign_spec("offer", "all", kind="ad_hoc"), NOW)
    sent_to = [ids[key] for key in ("email-fan", "sms-fan", "no-sms", "bounced", "nobody")]
    email: dict[int, dict[int, int]] = {}
    sms: dict[int, dict[int, int]] = {}
    for days in (10, 8, 6, 4):
        morning = (NOW - days * DAY).replace(hour=9)
        email[days] = await _sent(store, campaign, sent_to, "email", morning)
        sms[days] = await _sent(store, campaign, sent_to, "sms", morning.replace(hour=15))
    opened = "message_opened"
    rows: list[tuple[int, str, datetime, int | None]] = []
    for days in (10, 8, 6, 4):
        read = (NOW - days * DAY).replace(hour=20)
        for key in ("email-fan", "bounced", "nobody"):
            rows.append((ids[key], opened, read, email[days][ids[key]]))
        rows.append((ids["no-sms"], "message_clicked", read, sms[days][ids["no-sms"]]))
    for days in (10, 8):
        rows.append(
            (
                ids["sms-fan"],
                "message_clicked",
                (NOW - days * DAY).replace(hour=16),
                sms[days][ids["sms-fan"]],
            )
        )
    # A purchase the day after the last messages converts the last one only (the sms);
    # one with no message in the week before converts nothing.
    rows.append((ids["sms-fan"], "purchase", (NOW - 3 * DAY).replace(hour=10), None))
    rows.append((ids["no-sms"], "purchase", NOW - 30 * DAY, None))
    await _events(store, rows)

    async with store.transaction() as session:
        result = await refresh_channel_preferences(session, NOW)
    # 20 messages a channel: 12 e-mails opened, 4 + 3 text messages answered.
    assert result.rates == {"email": pytest.approx(0.6), "sms": pytest.approx(0.35)}
    m = PRIOR_MESSAGES
    chosen = await _preferences(store)
    assert result.customers == len(chosen) == 4
    summary: dict[str, tuple[str, int, object]] = {
        key: (row.channel, row.messages, pytest.approx(row.response_rate))
        for key, row in chosen.items()
    }
    assert summary == {
        "email-fan": ("email", 4, (4 + m * 0.6) / (4 + m)),
        "sms-fan": ("sms", 4, (3 + m * 0.35) / (4 + m)),
        # Answers text messages but gave no consent to them: e-mail, its best allowed.
        "no-sms": ("email", 4, (0 + m * 0.6) / (4 + m)),
        # Reads e-mail, but the address bounced: text messages.
        "bounced": ("sms", 4, (0 + m * 0.35) / (4 + m)),
    }
    # "quiet" was sent nothing; "nobody" may be sent marketing on no channel.
    async with store.transaction() as session:
        await refresh_channel_preferences(session, NOW + 365 * DAY)
    assert await _preferences(store) == {}


async def test_a_preferred_channel_campaign_uses_it_where_the_policy_allows(
    store: Store, settings: Settings
) -> None:
    people = [
        _person("likes-sms"),
        _person("likes-sms-revoked", consent_sms=False),
        _person("no-preference"),
        _person("sms-only", consent_email=False),
        _person("likes-in-app"),
        _person("no-consent", consent_email=False, consent_sms=False),
    ]
    ids = await add_people(store, people, NOW)
    preferences = {"likes-sms": "sms", "likes-sms-revoked": "sms", "likes-in-app": "in_app"}
    async with store.transaction() as session:
        await session.execute(
            insert(CustomerChannel),
            [
                {
                    "customer_id": ids[key],
                    "channel": channel,
                    "response_rate": 0.5,
                    "messages": 3,
                    "refreshed_at": NOW,
                }
                for key, channel in preferences.items()
            ],
        )
    await add_segment(store, "all", list(ids.values()), NOW)
    spec = campaign_spec(
        "nudge", "all", kind="ad_hoc", channel="preferred", channels=["email", "sms"]
    )
    await add_campaign(store, spec, NOW)
    settings.policy.quiet_hours = None
    program = load_program(DEFAULT_CONFIG_DIR / "program")
    planned = await run_campaign_now(store, program, settings, "nudge", NOW)
    assert planned.plan.outcomes == {Outcome.QUEUED: 5, Outcome.NO_CONSENT: 1}
    async with store.reading() as session:
        rows = await session.execute(select(OutboxMessage.customer_id, OutboxMessage.channel))
        channels = {customer: channel for customer, channel in rows}
    by_key = {key: channels.get(customer) for key, customer in ids.items()}
    assert by_key == {
        "likes-sms": "sms",
        "likes-sms-revoked": "email",  # consent withdrawn since the refresh
        "no-preference": "email",  # the campaign's first channel
        "sms-only": "sms",  # the first of its channels the policy allows
        "likes-in-app": "email",  # not one of the campaign's channels
        "no-consent": None,
    }


def test_preferred_channels_are_validated_with_the_reason() -> None:
    with pytest.raises(ValidationError, match="needs `channels`"):
        campaign_spec("x", "all", channel="preferred")
    with pytest.raises(ValidationError, match='is for `channel = "preferred"`'):
        campaign_spec("x", "all", channels=["sms"])
    with pytest.raises(ValidationError, match="names a channel twice"):
        campaign_spec("x", "all", channel="preferred", channels=["sms", "sms"])
    spec = campaign_spec("x", "all", channel="preferred", channels=["sms", "email"])
    assert spec.channel_choices == ("sms", "email")


PREFERRED = """
[[campaign]]
name = "nudge"
kind = "cycle"
target = { segment = "value-vip" }
channel = "preferred"
channels = ["email", "sms"]
send_time = "best"
variants = ["offer_a"]
schedule = "0 10 * * MON"
"""


def test_program_validate_accepts_preferred_and_best_and_explains_mistakes(
    tmp_path: Path,
) -> None:
    [nudge] = load_program(_folder(tmp_path / "good", PREFERRED), TEMPLATES).campaigns
    assert (nudge.spec.channel_choices, nudge.spec.send_time) == (("email", "sms"), "best")
    unknown = _problems(tmp_path / "a", PREFERRED.replace('"sms"]', '"fax"]'))
    assert "campaigns.toml:7: campaign 1, channels 2: Input should be 'email', 'sms'" in unknown
    when = _problems(tmp_path / "b", PREFERRED.replace('"best"', '"10:00"'))
    assert 'campaigns.toml:8: campaign 1, field `send_time`: must be "now" (when the run' in when
    missing = _problems(tmp_path / "c", PREFERRED.replace('channels = ["email", "sms"]\n', ""))
    assert "needs `channels`, the channels to choose from in fallback order" in missing


def test_every_channel_of_a_preferred_campaign_needs_its_templates(tmp_path: Path) -> None:
    text = PREFERRED.replace('["offer_a"]', '["bonus_sms"]').replace(
        '["email", "sms"]', '["sms", "email"]'
    )
    problems = _problems(tmp_path, text)
    assert "field `variants`: template `bonus_sms` lacks bonus_sms.subject.j2" in problems
