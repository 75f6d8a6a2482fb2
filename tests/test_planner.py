"""The planner: audiences through the contact policy into the outbox, every outcome counted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger
from pydantic import ValidationError
from sqlalchemy import BigInteger, literal, select

from config import DEFAULT_CONFIG_DIR
from core import clock
from core.db import Store
from core.errors import CampaignError
from core.models import Campaign, CampaignRun, OutboxMessage
from core.planner.control import (
    campaign_salt,
    control_bucket,
    control_bucket_sql,
    control_threshold,
)
from core.planner.launch import launch_campaign, launch_spec, run_campaign_now
from core.planner.runs import latest_slot, plan_due_runs, plan_runs, request_run
from core.policy import Outcome, parse_quiet_hours
from core.program import Program, load_program
from core.program.model import CampaignSpec
from core.settings import PolicySettings, Settings
from tests.conftest import NOW
from tests.planner_world import (
    Person,
    add_campaign,
    add_people,
    add_segment,
    address_of,
    campaign_spec,
    suppress,
)

DAY = timedelta(days=1)


def _program() -> Program:
    return load_program(DEFAULT_CONFIG_DIR / "program")


async def test_a_tick_plans_due_cycles_with_priority_and_caps(
    store: Store, settings: Settings
) -> None:
    ids = await add_people(store, [Person(f"c{i}") for i in range(10)], NOW)
    everyone = list(ids.values())
    await add_segment(store, "all", everyone, NOW)
    await add_segment(store, "half", everyone[:5], NOW)
    start = NOW.replace(hour=9)
    await add_campaign(store, campaign_spec("low", "all", priority=10), start)
    await add_campaign(store, campaign_spec("high", "half", priority=90), start)
    settings.policy.quiet_hours = None
    tick = NOW.replace(hour=10, minute=1)
    with clock.using(clock.FixedClock(tick)):
        planned = await plan_due_runs(store, _program(), settings, tick)
    by_name = {p.plan.campaign: p.plan for p in planned}
    assert by_name["high"].outcomes == {Outcome.QUEUED: 5}
    assert by_name["low"].outcomes == {Outcome.QUEUED: 5, Outcome.LOST: 5}
    assert by_name["low"].lost_to == {"high": 5}
    async with store.reading() as session:
        rows = (await session.execute(select(OutboxMessage))).scalars().all()
        runs = (await session.execute(select(CampaignRun))).scalars().all()
    assert len(rows) == 10
    assert {r.status for r in runs} == {"planned"}
    again = await plan_due_runs(store, _program(), settings, tick)
    assert again == []


async def _outbox(store: Store) -> list[OutboxMessage]:
    async with store.reading() as session:
        return list((await session.execute(select(OutboxMessage))).scalars())


def test_quiet_hours_hold_until_the_window_opens_in_the_customers_zone() -> None:
    quiet = parse_quiet_hours("21:00-08:00")
    lisbon, tokyo = ZoneInfo("Europe/Lisbon"), ZoneInfo("Asia/Tokyo")
    evening = datetime(2026, 11, 23, 23, 0, tzinfo=UTC)  # 23:00 in Lisbon, 08:00 in Tokyo
    assert quiet.release(evening, lisbon) == datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    assert quiet.release(evening, tokyo) is None
    early = datetime(2026, 11, 23, 5, 0, tzinfo=UTC)
    assert quiet.release(early, lisbon) == datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    # Across the end of summer time (2026-10-25 in Lisbon) the window ends at 08:00 local.
    night = datetime(2026, 10, 24, 22, 0, tzinfo=UTC)
    assert quiet.release(night, lisbon) == datetime(2026, 10, 25, 8, 0, tzinfo=UTC)
    assert parse_quiet_hours("12:00-14:00").release(early, lisbon) is None
    for bad in ("9-17", "25:00-08:00", "08:00-08:00"):
        with pytest.raises(ValueError, match="quiet hours"):
            parse_quiet_hours(bad)


def test_negative_caps_and_bad_quiet_hours_are_refused() -> None:
    with pytest.raises(ValidationError, match="max_per_day"):
        PolicySettings(max_per_day=-1)
    with pytest.raises(ValidationError, match="HH:MM-HH:MM"):
        PolicySettings(quiet_hours="late")


async def test_the_control_hash_is_the_same_in_sql_and_python(store: Store) -> None:
    salt = campaign_salt("winback")
    ids = [1, 2, 3, 1000, 65_537, 2**31 - 1, 2**32 + 5, 9_007_199_254_740_993]
    async with store.reading() as session:
        buckets = [
            (
                await session.execute(select(control_bucket_sql(literal(i, BigInteger), salt)))
            ).scalar_one()
            for i in ids
        ]
    assert buckets == [control_bucket("winback", i) for i in ids]
    share = sum(control_bucket("winback", i) < control_threshold(10) for i in range(1, 20_001))
    assert 1_800 < share < 2_200  # about 10%


async def test_quiet_hours_hold_and_transactional_messages_go_now(
    store: Store, settings: Settings
) -> None:
    ids = await add_people(
        store,
        [Person("lisbon", time_zone="Europe/Lisbon"), Person("tokyo", time_zone="Asia/Tokyo")],
        NOW,
    )
    await add_segment(store, "all", list(ids.values()), NOW)
    await add_campaign(store, campaign_spec("offer", "all", kind="ad_hoc"), NOW)
    await add_campaign(
        store, campaign_spec("receipt", "all", kind="ad_hoc", category="transactional"), NOW
    )
    evening = datetime(2026, 11, 23, 23, 0, tzinfo=UTC)
    for name in ("offer", "receipt"):
        await run_campaign_now(store, _program(), settings, name, evening)
    due = {(row.campaign_id, row.customer_id): row.due_at for row in await _outbox(store)}
    offer, receipt = await _campaign_ids(store, "offer", "receipt")
    assert due[(offer, ids["lisbon"])] == datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    assert due[(offer, ids["tokyo"])] == evening
    assert due[(receipt, ids["lisbon"])] == evening  # transactional: no quiet hours, no caps


async def _campaign_ids(store: Store, *names: str) -> list[int]:
    async with store.reading() as session:
        rows = dict((await session.execute(select(Campaign.name, Campaign.id))).all())
    return [rows[name] for name in names]


async def test_cycles_rotate_variants_and_keep_their_cooldown(
    store: Store, settings: Settings
) -> None:
    ids = await add_people(store, [Person("stayer")], NOW)
    await add_segment(store, "all", list(ids.values()), NOW)
    spec = campaign_spec("weekly", "all", variants=["offer_a", "offer_b"], cooldown="10d")
    await add_campaign(store, spec, NOW - DAY)
    settings.policy.quiet_hours = None
    sent: list[str] = []
    for week in range(6):
        tick = (NOW + week * 7 * DAY).replace(hour=10, minute=5)
        planned = await plan_due_runs(store, _program(), settings, tick)
        [run] = planned
        if run.plan.count(Outcome.QUEUED):
            sent.append(max(await _outbox(store), key=lambda row: row.id).variant)
        else:
            assert run.plan.outcomes == {Outcome.COOLDOWN: 1}
    # Every other week (the 10-day cooldown), alternating the two variants.
    assert sent == ["offer_a", "offer_b", "offer_a"]


async def test_missed_slots_coalesce_into_one_run_and_a_run_key_plans_once(
    store: Store, settings: Settings
) -> None:
    ids = await add_people(store, [Person("a"), Person("b")], NOW)
    await add_segment(store, "all", list(ids.values()), NOW)
    await add_campaign(store, campaign_spec("daily", "all"), NOW - 10 * DAY)
    planned = await plan_due_runs(store, _program(), settings, NOW)
    assert [run.run_key for run in planned] == ["schedule:2026-11-23T10:00+00:00"]
    assert await plan_due_runs(store, _program(), settings, NOW) == []
    async with store.transaction() as session:
        campaign = await session.scalar(select(Campaign).where(Campaign.name == "daily"))
        assert campaign is not None
        run_id = await request_run(
            session, campaign, "schedule:2026-11-23T10:00+00:00", "schedule", NOW
        )
    assert await plan_runs(store, _program(), settings, NOW, [run_id]) == []
    assert len(await _outbox(store)) == 2


def test_latest_slot_finds_the_last_fire_time_in_the_window() -> None:
    trigger = CronTrigger.from_crontab("0 10 * * MON", timezone=UTC)
    now = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)  # a Wednesday
    assert latest_slot(trigger, now - 30 * DAY, now) == datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    assert latest_slot(trigger, datetime(2026, 11, 23, 10, 0, tzinfo=UTC), now) is None
    monthly = CronTrigger.from_crontab("0 0 1 1 *", timezone=UTC)
    assert latest_slot(monthly, now - 1000 * DAY, now) == datetime(2026, 1, 1, tzinfo=UTC)


async def test_suppressed_and_unsubscribed_customers_are_never_queued(
    store: Store, settings: Settings
) -> None:
    people = [Person("ok"), Person("bounced"), Person("unsub"), Person("no-mail", email=None)]
    ids = await add_people(store, people, NOW)
    await suppress(store, address_of(people[1]) or "", "hard_bounce", NOW)
    await suppress(store, address_of(people[2]) or "", "unsubscribed", NOW)
    await add_segment(store, "all", list(ids.values()), NOW)
    await add_campaign(store, campaign_spec("offer", "all", kind="ad_hoc"), NOW)
    await add_campaign(
        store, campaign_spec("receipt", "all", kind="ad_hoc", category="transactional"), NOW
    )
    settings.policy.quiet_hours = None
    offer = await run_campaign_now(store, _program(), settings, "offer", NOW)
    receipt = await run_campaign_now(store, _program(), settings, "receipt", NOW)
    assert offer.plan.outcomes == {
        Outcome.QUEUED: 1,
        Outcome.SUPPRESSED: 1,
        Outcome.UNSUBSCRIBED: 1,
        Outcome.NO_ADDRESS: 1,
    }
    # Transactional: an unsubscribe from marketing does not apply, a hard bounce does.
    assert receipt.plan.outcomes == {
        Outcome.QUEUED: 2,
        Outcome.SUPPRESSED: 1,
        Outcome.NO_ADDRESS: 1,
    }


async def test_a_launch_is_checked_before_anything_is_written(
    store: Store, settings: Settings
) -> None:
    ids = await add_people(store, [Person(f"c{i}") for i in range(5)], NOW)
    await add_segment(store, "five", list(ids.values()), NOW)
    await add_segment(store, "empty", [], NOW)
    settings.policy.quiet_hours = None
    settings.policy.launch_confirm_above = 3

    def spec(segment: str, template: str = "offer_a") -> CampaignSpec:
        return launch_spec(
            segment=segment,
            stage=None,
            rule=None,
            template=template,
            channel="email",
            control=0,
            priority=50,
            name=None,
            now=NOW,
        )

    settings.templates_dir = DEFAULT_CONFIG_DIR / "templates"
    for bad, message in (
        (spec("empty"), "audience is empty"),
        (spec("nowhere"), "segment `nowhere` is not in the database"),
        (spec("five", "missing"), "template `missing` lacks"),
        (spec("five"), "add --yes"),
    ):
        with pytest.raises(CampaignError, match=message):
            await launch_campaign(store, _program(), settings, bad, NOW)
    async with store.reading() as session:
        assert (await session.execute(select(Campaign))).first() is None
    with pytest.raises(CampaignError, match="control"):
        launch_spec(
            segment="five",
            stage=None,
            rule=None,
            template="offer_a",
            channel="email",
            control=120,
            priority=50,
            name=None,
            now=NOW,
        )
    launched = await launch_campaign(store, _program(), settings, spec("five"), NOW, confirmed=True)
    assert launched.planned is not None
    assert launched.planned.plan.count(Outcome.QUEUED) == 5
    later = await launch_campaign(
        store,
        _program(),
        settings,
        spec("five").model_copy(update={"name": "later"}),
        NOW,
        at=NOW + DAY,
        confirmed=True,
    )
    assert later.planned is None
    assert await plan_due_runs(store, _program(), settings, NOW) == []
    [due] = await plan_due_runs(store, _program(), settings, NOW + DAY)
    assert due.plan.campaign == "later" and due.plan.count(Outcome.CAPPED) == 0


async def test_an_interval_cycle_runs_every_interval_from_its_apply(
    store: Store, settings: Settings
) -> None:
    ids = await add_people(store, [Person("a")], NOW)
    await add_segment(store, "all", list(ids.values()), NOW)
    await add_campaign(store, campaign_spec("fortnightly", "all", schedule="every 2w"), NOW)
    settings.policy.quiet_hours = None
    keys = []
    for day in (1, 13, 14, 20, 28, 29):
        keys += [
            run.run_key for run in await plan_due_runs(store, _program(), settings, NOW + day * DAY)
        ]
    assert keys == ["schedule:2026-12-07T12:00+00:00", "schedule:2026-12-21T12:00+00:00"]
