"""Event and date triggers on both databases, and POST /v1/events over real HTTP.

Events come in through the API served by uvicorn on a free loopback port (or
are stored and fired directly); what a trigger did is read back from the
outbox and the campaign runs. Times are fixed: the API reads the frozen clock,
the triggers the ``now`` they are given.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from core import clock
from core.api import serve_api
from core.api.auth import new_ingest_token
from core.campaigns import store_campaign
from core.db import Store
from core.ingest.live import CheckedBatch, GroupCommit, LiveReport
from core.ingest.source import Rejected, Row
from core.models import CampaignRun, Customer, CustomerRollup, OutboxMessage
from core.program import Program, ProgramError, load_program
from core.program.model import CampaignSpec
from core.settings import Settings
from core.triggers import EventWindow, fire_date_triggers, fire_event_triggers
from tests.conftest import NOW
from tests.planner_world import Person, add_people
from tests.test_api import free_port

CONFIG_PROGRAM = Path(__file__).parent.parent / "config" / "program"
TOKEN, TOKEN_HASH = new_ingest_token()

RECEIPT: dict[str, Any] = {
    "name": "receipt",
    "kind": "triggered",
    "category": "transactional",
    "trigger": {"event": "purchase"},
    "channel": "email",
    "variants": ["receipt"],
    "priority": 100,
    "control": 0,
}
BIG_RESULT: dict[str, Any] = {
    "name": "big-result",
    "kind": "triggered",
    "trigger": {"event": "game_result", "event_rule": "abs(value) >= 1000"},
    "channel": "email",
    "variants": ["big_result"],
    "control": 0,
}
NUDGE: dict[str, Any] = {
    "name": "feature-nudge",
    "kind": "triggered",
    "trigger": {
        "event": "page_view",
        "event_rule": 'starts_with(attr("page"), "/features/")',
        "customer_rule": 'not has_event("feature_used", within = "30d")',
    },
    "channel": "email",
    "variants": ["feature_nudge"],
    "control": 0,
}


def program_dir(root: Path, campaigns: str = "") -> Path:
    """A program folder with the default stages, segments and scores and ``campaigns``."""
    folder = root / "program"
    folder.mkdir(exist_ok=True)
    for name in ("stages.toml", "segments.toml", "scores.toml"):
        shutil.copy(CONFIG_PROGRAM / name, folder / name)
    (folder / "campaigns.toml").write_text(campaigns)
    return folder


@pytest.fixture
def program(tmp_path: Path) -> Program:
    return load_program(program_dir(tmp_path))


@pytest.fixture
def live_settings(settings: Settings, tmp_path: Path) -> Settings:
    """Ingest on, quiet hours off, the test program next to the settings file."""
    program_dir(tmp_path)
    return settings.model_copy(
        update={
            "api": settings.api.model_copy(
                update={"port": free_port(), "ingest_token_hashes": [TOKEN_HASH]}
            ),
            "policy": settings.policy.model_copy(update={"quiet_hours": None}),
        }
    )


async def add_triggered(store: Store, *specs: dict[str, Any]) -> None:
    async with store.transaction() as session:
        for spec in specs:
            store_campaign(session, CampaignSpec.model_validate(spec), origin="program", now=NOW)


async def outbox(store: Store) -> list[tuple[str, int, str, str]]:
    """(run key, customer id, category, state) of every outbox row."""
    async with store.reading() as session:
        rows = await session.execute(
            select(
                CampaignRun.run_key,
                OutboxMessage.customer_id,
                OutboxMessage.category,
                OutboxMessage.state,
            )
            .join(CampaignRun, CampaignRun.id == OutboxMessage.run_id)
            .order_by(OutboxMessage.id)
        )
        return [(key, customer, category, state) for key, customer, category, state in rows]


async def campaigns_sent(store: Store) -> list[tuple[str, int]]:
    """(campaign name, customer id) of every outbox row, in order."""
    from core.models import Campaign

    async with store.reading() as session:
        rows = await session.execute(
            select(Campaign.name, OutboxMessage.customer_id)
            .join(Campaign, Campaign.id == OutboxMessage.campaign_id)
            .order_by(OutboxMessage.id)
        )
        return [(name, customer) for name, customer in rows]


@pytest.fixture
async def api(store: Store, live_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the API served over real HTTP on loopback, clock frozen at NOW."""
    with clock.using(clock.FixedClock(NOW)):
        started = asyncio.Event()
        task = asyncio.create_task(serve_api(store, live_settings, started=started))
        await asyncio.wait_for(started.wait(), timeout=10)
        base = f"http://127.0.0.1:{live_settings.api.port}"
        try:
            async with httpx.AsyncClient(
                base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}
            ) as client:
                yield client
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task


def event(customer: str, kind: str, minutes_ago: float = 1, **fields: Any) -> dict[str, Any]:
    at = NOW - timedelta(minutes=minutes_ago)
    return {"customer_id": customer, "type": kind, "occurred_at": at.isoformat(), **fields}


# --- program files ------------------------------------------------------------------------


def test_validate_explains_each_bad_trigger(tmp_path: Path) -> None:
    campaigns = """
[[campaign]]
name = "no-trigger"
kind = "triggered"
channel = "email"
variants = ["receipt"]

[[campaign]]
name = "cycle-with-trigger"
kind = "cycle"
target = { stage = "active" }
schedule = "0 10 * * *"
trigger = { event = "purchase" }
channel = "email"
variants = ["receipt"]

[[campaign]]
name = "event-and-date"
kind = "triggered"
trigger = { event = "purchase", date = "birthday" }
channel = "email"
variants = ["receipt"]

[[campaign]]
name = "customer-field-on-event"
kind = "triggered"
trigger = { event = "purchase", event_rule = "purchase_count > 2" }
channel = "email"
variants = ["receipt"]

[[campaign]]
name = "withheld-receipt"
kind = "triggered"
category = "transactional"
trigger = { event = "purchase", customer_rule = "revenue_total >" }
channel = "email"
variants = ["receipt"]
"""
    with pytest.raises(ProgramError) as caught:
        load_program(program_dir(tmp_path, campaigns))
    message = str(caught.value)
    assert "a triggered campaign needs a `trigger`" in message
    assert "only triggered campaigns have a `trigger`, not cycle ones" in message
    assert "needs exactly one of `event` or `date`" in message
    assert "field `event_rule`: unknown field `purchase_count`" in message
    assert "a transactional message is never withheld: set `control = 0`" in message
    assert "field `customer_rule`" in message
    lines = [line for line in message.splitlines() if "campaigns.toml:" in line]
    assert len(lines) == 6, message


def test_the_default_program_ships_its_triggered_campaigns() -> None:
    program = load_program(CONFIG_PROGRAM, CONFIG_PROGRAM.parent / "templates")
    triggered = {c.name: c.spec for c in program.campaigns if c.spec.kind == "triggered"}
    assert set(triggered) >= {
        "purchase-receipt",
        "feature-page-nudge",
        "big-result-message",
        "birthday-greeting",
        "first-purchase-anniversary",
    }
    assert triggered["purchase-receipt"].category == "transactional"


# --- event triggers ---------------------------------------------------------------------


async def test_event_triggers_match_the_event_and_the_customer_once(
    store: Store, settings: Settings, program: Program
) -> None:
    ids = await add_people(store, [Person("ann"), Person("ben"), Person("cat")], NOW)
    await add_triggered(store, NUDGE)
    from core.db.bulk import store_events
    from core.db.types import epoch_micros
    from core.ingest.events import dedupe_key

    def row(customer: str, kind: str, page: str, minutes: int) -> Any:
        at = epoch_micros((NOW - timedelta(minutes=minutes)).replace(tzinfo=None))
        properties = json.dumps({"page": page})
        return (ids[customer], kind, at, None, properties, "test", None, dedupe_key(customer, page))

    async with store.transaction() as session:
        await store_events(
            session,
            [
                row("ben", "feature_used", "/features/export", 60 * 24),
                row("ann", "page_view", "/features/export", 5),
                row("ben", "page_view", "/features/export", 4),
                row("cat", "page_view", "/pricing", 3),
            ],
            NOW,
        )
    window = EventWindow(NOW - timedelta(hours=1), NOW)
    [run] = await fire_event_triggers(store, program, settings, window, NOW)
    assert run.plan.targeted == 1
    assert await campaigns_sent(store) == [("feature-nudge", ids["ann"])]
    assert await fire_event_triggers(store, program, settings, window, NOW) == []
    assert len(await campaigns_sent(store)) == 1


# --- POST /v1/events over HTTP ------------------------------------------------------------


async def test_bad_events_are_refused_one_by_one_and_the_good_ones_stored(
    store: Store, api: httpx.AsyncClient, live_settings: Settings
) -> None:
    ids = await add_people(store, [Person("ann")], NOW)
    await add_triggered(store, RECEIPT)
    big = "x" * (live_settings.imports.max_field_bytes + 1)
    batch = [
        event("ann", "purchase", value=10),
        event("nobody", "purchase"),
        {"customer_id": "ann", "occurred_at": NOW.isoformat()},
        event("ann", "login", minutes_ago=-24 * 60),
        event("ann", "page_view", properties={"blob": big}),
        "not an object",
        event("ann", "login", minutes_ago=-5),
    ]
    answer = await api.post("/v1/events", json={"events": batch})
    assert answer.status_code == 207
    body = answer.json()
    assert body["stored"] == 2
    refused = {item["index"]: (item["status"], item["reason"]) for item in body["rejected"]}
    assert refused[1] == (404, "unknown customer `nobody`; import the customer first")
    assert refused[2] == (422, "missing required field `type`")
    assert refused[3][0] == 422 and "ahead of the server's clock" in refused[3][1]
    assert refused[4][0] == 422 and "larger than" in refused[4][1]
    assert refused[5] == (422, "an event must be a JSON object")
    assert set(refused) == {1, 2, 3, 4, 5}
    assert await campaigns_sent(store) == [("receipt", ids["ann"])]

    only_bad = await api.post("/v1/events", json=[event("nobody", "purchase")])
    assert only_bad.status_code == 422
    not_json = await api.post("/v1/events", content=b'{"events": [', headers=_json())
    assert not_json.status_code == 400 and "not valid JSON" in not_json.json()["error"]
    not_a_batch = await api.post("/v1/events", json={"event": {}})
    assert not_a_batch.status_code == 400
    too_many = [event("ann", "login")] * (live_settings.ingest.max_batch_events + 1)
    assert (await api.post("/v1/events", json=too_many)).status_code == 413
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer wrong"}):
        refused_token = await api.post("/v1/events", json=[event("ann", "login")], headers=headers)
        assert refused_token.status_code == 401
        assert "ingest token" in refused_token.json()["error"]
    assert len(await campaigns_sent(store)) == 1


def _json() -> dict[str, str]:
    return {"Content-Type": "application/json"}


async def test_the_same_batch_twice_fires_its_triggers_once(
    store: Store, api: httpx.AsyncClient
) -> None:
    ids = await add_people(store, [Person("ann"), Person("ben")], NOW)
    await add_triggered(store, RECEIPT, BIG_RESULT)
    batch = [
        event("ann", "purchase", value=20, idempotency_key="order-1"),
        event("ben", "game_result", value=-2500),
        event("ben", "game_result", value=40, minutes_ago=2),
    ]
    first = (await api.post("/v1/events", json={"events": batch})).json()
    assert {t["campaign"] for t in first["triggered"]} == {"receipt", "big-result"}
    again = await api.post("/v1/events", json={"events": batch})
    assert again.status_code == 200
    assert again.json()["repeated"] == 3 and again.json()["triggered"] == []
    # A later batch repeating one of them with a new event fires the new one only.
    mixed = [batch[0], event("ann", "purchase", value=5, idempotency_key="order-2")]
    assert (await api.post("/v1/events", json=mixed)).json()["stored"] == 1
    sent = await campaigns_sent(store)
    assert sorted(sent) == [
        ("big-result", ids["ben"]),
        ("receipt", ids["ann"]),
        ("receipt", ids["ann"]),
    ]


async def test_a_receipt_goes_out_when_the_caps_hold_marketing_back(
    store: Store, api: httpx.AsyncClient
) -> None:
    ids = await add_people(store, [Person("ann")], NOW)
    await add_triggered(store, RECEIPT, BIG_RESULT)
    first = await api.post("/v1/events", json=[event("ann", "game_result", value=5000)])
    assert first.json()["triggered"][0]["queued"] == 1
    # max_per_day = 1: the next marketing message is capped; the receipt is not.
    batch = [event("ann", "game_result", value=-3000), event("ann", "purchase", value=9)]
    answer = (await api.post("/v1/events", json=batch)).json()
    outcomes = {t["campaign"]: (t["targeted"], t["queued"]) for t in answer["triggered"]}
    assert outcomes == {"receipt": (1, 1), "big-result": (1, 0)}
    async with store.reading() as session:
        runs = (await session.execute(select(CampaignRun.outcomes))).scalars().all()
    assert any(run["counts"] == {"capped": 1} for run in runs)
    sent = await outbox(store)
    assert [(customer, category) for _, customer, category, _ in sent] == [
        (ids["ann"], "marketing"),
        (ids["ann"], "transactional"),
    ]


async def test_unknown_customers_can_be_created_instead(
    store: Store, live_settings: Settings
) -> None:
    settings = live_settings.model_copy(
        update={"ingest": live_settings.ingest.model_copy(update={"unknown_customers": "create"})}
    )
    with clock.using(clock.FixedClock(NOW)):
        started = asyncio.Event()
        task = asyncio.create_task(serve_api(store, settings, started=started))
        await asyncio.wait_for(started.wait(), timeout=10)
        try:
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{settings.api.port}",
                headers={"Authorization": f"Bearer {TOKEN}"},
            ) as client:
                answer = await client.post("/v1/events", json=[event("newcomer", "login")] * 2)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    assert answer.status_code == 200
    assert answer.json()["customers_created"] == 1 and answer.json()["stored"] == 1
    async with store.reading() as session:
        names = (await session.execute(select(Customer.external_id))).scalars().all()
    assert names == ["newcomer"]


# --- concurrent batches: one transaction for all that wait -------------------------------


def rows(batch: list[dict[str, Any]]) -> list[Row | Rejected]:
    return [Row(index, item, "") for index, item in enumerate(batch)]


async def test_waiting_batches_share_a_transaction_and_each_hears_of_its_own_runs(
    store: Store, live_settings: Settings, program: Program
) -> None:
    ids = await add_people(store, [Person(f"p{i}") for i in range(8)], NOW)
    await add_triggered(store, RECEIPT, BIG_RESULT)
    group = GroupCommit(store, live_settings, lambda: program, source="api")
    batches = [[event(f"p{i}", "purchase", value=i, idempotency_key=f"o{i}")] for i in range(6)]
    batches.append([event("p6", "game_result", value=5000)])
    batches.append([event("p7", "login"), event("nobody", "purchase")])
    with clock.using(clock.FixedClock(NOW)):
        # All arrive before the first is stored: they go in one transaction, one run each.
        reports = await asyncio.gather(*(group.ingest(rows(batch), NOW) for batch in batches))
    async with store.reading() as session:
        assert await session.scalar(select(func.count()).select_from(CampaignRun)) == 2
    answers = [report.as_dict() for report in reports]
    for answer in answers[:6]:
        assert answer["stored"] == 1
        assert [(t["campaign"], t["targeted"]) for t in answer["triggered"]] == [("receipt", 6)]
    assert [t["campaign"] for t in answers[6]["triggered"]] == ["big-result"]
    assert answers[7]["stored"] == 1 and answers[7]["triggered"] == []
    assert [(r["index"], r["status"]) for r in answers[7]["rejected"]] == [(1, 404)]
    expected = [("receipt", ids[f"p{i}"]) for i in range(6)] + [("big-result", ids["p6"])]
    assert sorted(await campaigns_sent(store)) == sorted(expected)


async def test_two_waiting_batches_of_one_customer_are_stored_apart(
    store: Store, live_settings: Settings, program: Program
) -> None:
    ids = await add_people(store, [Person("ann"), Person("ben")], NOW)
    await add_triggered(store, RECEIPT)
    group = GroupCommit(store, live_settings, lambda: program, source="api")
    batches = [
        [event("ann", "purchase", value=1, idempotency_key="a")],
        [event("ann", "purchase", value=2, idempotency_key="b")],
        [event("ben", "purchase", value=3, idempotency_key="c")],
    ]
    with clock.using(clock.FixedClock(NOW)):
        await asyncio.gather(*(group.ingest(rows(batch), NOW) for batch in batches))
    # One run messages a customer once: ann's second purchase needs a run of its own.
    assert sorted(await campaigns_sent(store)) == sorted(
        [("receipt", ids["ann"]), ("receipt", ids["ann"]), ("receipt", ids["ben"])]
    )


async def test_each_waiting_batch_hears_of_the_customers_it_created(
    store: Store, live_settings: Settings, program: Program
) -> None:
    await add_people(store, [Person("ann")], NOW)
    ingest = live_settings.ingest.model_copy(update={"unknown_customers": "create"})
    settings = live_settings.model_copy(update={"ingest": ingest})
    group = GroupCommit(store, settings, lambda: program, source="api")
    batches = [
        [event("ann", "login"), event("ann", "login")],
        [event("new-1", "login"), event("new-2", "login", minutes_ago=2)],
    ]
    with clock.using(clock.FixedClock(NOW)):
        reports = await asyncio.gather(*(group.ingest(rows(batch), NOW) for batch in batches))
    counts = [(r.stored, r.repeated, r.customers_created) for r in reports]
    assert counts == [(1, 1, 0), (2, 0, 2)]


class _FailsForBroken(GroupCommit):
    """Storage fails for any group that holds an event of the customer ``broken``."""

    async def _write(self, batches: Sequence[CheckedBatch]) -> list[LiveReport]:
        if any(record[0] == "broken" for batch in batches for record in batch.events.records):
            raise RuntimeError("the disk is on fire")
        return await super()._write(batches)


async def test_a_batch_that_cannot_be_stored_fails_alone(
    store: Store, live_settings: Settings, program: Program
) -> None:
    ids = await add_people(store, [Person("ann"), Person("ben"), Person("broken")], NOW)
    await add_triggered(store, RECEIPT)
    group = _FailsForBroken(store, live_settings, lambda: program, source="api")
    batches = [[event(name, "purchase", value=5)] for name in ("ann", "broken", "ben")]
    with clock.using(clock.FixedClock(NOW)):
        outcomes = await asyncio.gather(
            *(group.ingest(rows(batch), NOW) for batch in batches), return_exceptions=True
        )
    assert isinstance(outcomes[1], RuntimeError)
    assert [outcome.stored for outcome in outcomes if isinstance(outcome, LiveReport)] == [1, 1]
    assert sorted(await campaigns_sent(store)) == sorted(
        [("receipt", ids["ann"]), ("receipt", ids["ben"])]
    )


# --- date triggers ------------------------------------------------------------------------

BIRTHDAY: dict[str, Any] = {
    "name": "birthday",
    "kind": "triggered",
    "trigger": {"date": "birthday", "send_at": "10:00"},
    "channel": "email",
    "variants": ["birthday"],
    "control": 0,
}
ANNIVERSARY: dict[str, Any] = {
    **BIRTHDAY,
    "name": "anniversary",
    "trigger": {"date": "first_purchase_anniversary", "send_at": "10:00"},
    "variants": ["anniversary"],
}


async def test_date_triggers_fire_at_the_local_time_of_each_customer_once_a_day(
    store: Store, live_settings: Settings, program: Program
) -> None:
    day = date(2026, 6, 1)
    people = [
        Person("tokyo", time_zone="Asia/Tokyo"),
        Person("lisbon", time_zone="Europe/Lisbon"),
        Person("tomorrow", time_zone="Asia/Tokyo"),
        Person("unzoned"),
    ]
    ids = await add_people(store, people, NOW)
    birthdays = {
        "tokyo": date(1990, 6, 1),
        "lisbon": date(1984, 6, 1),
        "tomorrow": date(1990, 6, 2),
    }
    first_purchase = {
        # 2025-06-01 00:30 in Tokyo is still 31 May in UTC.
        "tokyo": datetime(2025, 5, 31, 15, 30, tzinfo=UTC),
        "unzoned": datetime(2024, 6, 1, 23, 0, tzinfo=UTC),
    }
    async with store.transaction() as session:
        for key, birthday in birthdays.items():
            await session.execute(
                update(Customer).where(Customer.id == ids[key]).values(birthday=birthday)
            )
        for key, first in first_purchase.items():
            session.add(CustomerRollup(customer_id=ids[key], first_purchase_at=first))
    await add_triggered(store, BIRTHDAY, ANNIVERSARY)
    # Both messages may reach one customer on one day: the caps are not what is tested.
    policy = live_settings.policy.model_copy(update={"max_per_day": 2})
    live_settings = live_settings.model_copy(update={"policy": policy})

    def at(hour: int, minute: int = 0) -> datetime:
        return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)

    # 01:30 UTC: 10:30 in Tokyo (fire), 02:30 in Lisbon, 01:30 UTC (not yet).
    await fire_date_triggers(store, program, live_settings, at(1, 30))
    assert sorted(await campaigns_sent(store)) == [
        ("anniversary", ids["tokyo"]),
        ("birthday", ids["tokyo"]),
    ]
    # 09:30 UTC is 10:30 in Lisbon (summer time); Tokyo's day was fired already.
    await fire_date_triggers(store, program, live_settings, at(9, 30))
    assert ("birthday", ids["lisbon"]) in await campaigns_sent(store)
    assert len(await campaigns_sent(store)) == 3
    # 10:00 UTC: the program's zone; 15:30 UTC: 00:30 on 2 June in Tokyo, before 10:00.
    await fire_date_triggers(store, program, live_settings, at(10))
    await fire_date_triggers(store, program, live_settings, at(15, 30))
    await fire_date_triggers(store, program, live_settings, at(23, 59))
    sent = await campaigns_sent(store)
    assert sorted(sent) == sorted(
        [
            ("anniversary", ids["tokyo"]),
            ("birthday", ids["tokyo"]),
            ("birthday", ids["lisbon"]),
            ("anniversary", ids["unzoned"]),
        ]
    )
    async with store.reading() as session:
        keys = (await session.execute(select(CampaignRun.run_key))).scalars().all()
        count = await session.scalar(select(func.count()).select_from(CampaignRun))
    assert count == 4
    assert "birthday:2026-06-01:Asia/Tokyo" in keys
