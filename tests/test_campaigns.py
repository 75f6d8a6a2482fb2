"""Stored campaigns as operators see and steer them: list, detail, pause and resume."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from core.campaigns import (
    RUN_HISTORY,
    LastRun,
    RunCounts,
    campaign_definition,
    campaign_detail,
    list_campaigns,
    next_slot,
    pause_campaign,
    resume_campaign,
)
from core.db import Store
from core.errors import CampaignError
from core.models import AuditEntry, Campaign, CampaignRun
from core.program.apply import apply_program
from tests.conftest import NOW
from tests.test_program_apply import CAMPAIGNS, Files, launch, stored_campaigns

DAY = timedelta(days=1)
WARSAW = "Europe/Warsaw"
"""UTC+1 in November: a 10:00 slot there is 09:00 UTC."""


@pytest.fixture
async def stored_program(store: Store, files: Files) -> None:
    """The test program applied at NOW."""
    await apply_program(store, files.load(), NOW)


applied = pytest.mark.usefixtures("stored_program")


@pytest.fixture
def files(tmp_path: Path) -> Files:
    return Files.create(tmp_path)


async def add_runs(store: Store, name: str, *runs: dict[str, Any]) -> None:
    async with store.transaction() as session:
        campaign_id = (
            await session.execute(select(Campaign.id).where(Campaign.name == name))
        ).scalar_one()
        for number, run in enumerate(runs):
            values: dict[str, Any] = {
                "run_key": f"run-{number}",
                "occasion": "schedule",
                "status": "planned",
                **run,
            }
            session.add(CampaignRun(campaign_id=campaign_id, **values))


async def audit_actions(store: Store) -> list[tuple[str, str | None]]:
    async with store.reading() as session:
        rows = await session.execute(
            select(AuditEntry.action, AuditEntry.target).order_by(AuditEntry.id)
        )
        return [(action, target) for action, target in rows]


# ------------------------------------------------------------------------- list


@applied
async def test_list_shows_targets_schedules_and_next_runs(store: Store) -> None:
    async with store.reading() as session:
        listed = await list_campaigns(session, NOW, WARSAW)
    # Highest priority first, then by name.
    assert [s.name for s in listed] == ["spenders-adhoc", "spenders-weekly", "active-daily"]
    by_name = {s.name: s for s in listed}
    weekly, daily, adhoc = (
        by_name["spenders-weekly"],
        by_name["active-daily"],
        by_name["spenders-adhoc"],
    )
    assert (weekly.kind, weekly.status, weekly.priority, weekly.channel, weekly.origin) == (
        "cycle",
        "active",
        50,
        "email",
        "program",
    )
    assert weekly.target == "segment spenders"
    assert daily.target == "stage active"
    assert adhoc.target == "segment spenders, where revenue_total >= 400"
    assert weekly.schedule == "0 10 * * MON" and adhoc.schedule is None
    # NOW is Monday 12:00 UTC, past this Monday's 10:00 in Warsaw (09:00 UTC).
    assert weekly.next_run_at == datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    assert daily.next_run_at == datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    assert adhoc.next_run_at is None
    assert all(s.last_run is None for s in listed)


@applied
async def test_the_next_run_waits_for_schedule_from(store: Store) -> None:
    async with store.transaction() as session:
        await session.execute(
            update(Campaign)
            .where(Campaign.name == "spenders-weekly")
            .values(schedule_from=NOW + 10 * DAY)
        )
    async with store.reading() as session:
        by_name = {s.name: s for s in await list_campaigns(session, NOW, "UTC")}
    assert by_name["spenders-weekly"].next_run_at == datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
    assert next_slot("0 10 31 12 *", NOW, NOW, "UTC") == datetime(2026, 12, 31, 10, tzinfo=UTC)


@applied
async def test_paused_and_archived_campaigns(store: Store) -> None:
    await launch(store, "old-flash", status="archived")
    async with store.transaction() as session:
        await pause_campaign(session, "spenders-weekly", NOW)
    async with store.reading() as session:
        listed = {s.name: s for s in await list_campaigns(session, NOW, "UTC")}
        everything = await list_campaigns(session, NOW, "UTC", include_archived=True)
    assert "old-flash" not in listed
    assert {s.name: s.status for s in everything}["old-flash"] == "archived"
    assert listed["spenders-weekly"].status == "paused"
    assert listed["spenders-weekly"].next_run_at is None


@applied
async def test_the_last_run_is_the_latest_planned_one(store: Store) -> None:
    counts = {"targeted": 100, "queued": 80, "held": 5, "control": 10, "excluded": 5}
    await add_runs(
        store,
        "spenders-weekly",
        {"due_at": NOW - 2 * DAY, "planned_at": NOW - 2 * DAY, "targeted": 50, "queued": 50},
        {"due_at": NOW - DAY, "planned_at": NOW - DAY, **counts},
        {"due_at": NOW + DAY, "status": "pending"},
        {"due_at": NOW - DAY, "status": "failed", "error": "boom"},
    )
    await add_runs(store, "active-daily", {"due_at": NOW, "planned_at": NOW, "queued": 7})
    async with store.reading() as session:
        by_name = {s.name: s for s in await list_campaigns(session, NOW, "UTC")}
    assert by_name["spenders-weekly"].last_run == LastRun(NOW - DAY, RunCounts(100, 80, 5, 10, 5))
    assert by_name["active-daily"].last_run == LastRun(NOW, RunCounts(0, 7, 0, 0, 0))
    assert by_name["spenders-adhoc"].last_run is None


# ----------------------------------------------------------------------- detail


@applied
async def test_detail_has_the_definition_and_the_latest_runs(store: Store, files: Files) -> None:
    runs = [
        {
            "due_at": NOW - hours * timedelta(hours=1),
            "planned_at": NOW - hours * timedelta(hours=1),
            "targeted": hours,
            "outcomes": {"cooldown": hours, "lost_to": {"active-daily": 1}},
        }
        for hours in range(RUN_HISTORY + 5)
    ]
    await add_runs(store, "spenders-weekly", *runs)
    async with store.reading() as session:
        detail = await campaign_detail(session, "spenders-weekly", NOW, "UTC")
    spec = next(c.spec for c in files.load().campaigns if c.name == "spenders-weekly")
    assert detail.definition == campaign_definition(spec)
    assert detail.summary.name == "spenders-weekly" and detail.summary.target == "segment spenders"
    assert detail.schedule_from == detail.created_at == NOW
    assert detail.program_version is not None
    assert len(detail.runs) == RUN_HISTORY
    assert [run.counts.targeted for run in detail.runs] == list(range(RUN_HISTORY))
    latest = detail.runs[0]
    assert (latest.run_key, latest.occasion, latest.status, latest.due_at) == (
        "run-0",
        "schedule",
        "planned",
        NOW,
    )
    assert detail.runs[3].outcomes == {"cooldown": 3, "lost_to": {"active-daily": 1}}
    assert detail.summary.last_run == LastRun(NOW, RunCounts(0, 0, 0, 0, 0))


@applied
async def test_detail_of_a_campaign_without_runs(store: Store) -> None:
    async with store.reading() as session:
        detail = await campaign_detail(session, "spenders-adhoc", NOW, "UTC")
    assert detail.runs == [] and detail.summary.last_run is None
    assert detail.description is None


# ---------------------------------------------------------------- pause, resume


@applied
async def test_pause_and_resume(store: Store) -> None:
    async with store.transaction() as session:
        paused = await pause_campaign(session, "spenders-weekly", NOW + DAY)
    assert paused.changed and (paused.previous, paused.status) == ("active", "paused")
    assert "cadence campaign resume spenders-weekly" in paused.message
    row = (await stored_campaigns(store))["spenders-weekly"]
    assert (row.status, row.updated_at, row.schedule_from) == ("paused", NOW + DAY, NOW)

    async with store.transaction() as session:
        again = await pause_campaign(session, "spenders-weekly", NOW + 2 * DAY)
    assert not again.changed and "already paused" in again.message
    assert (await stored_campaigns(store))["spenders-weekly"].updated_at == NOW + DAY

    async with store.transaction() as session:
        resumed = await resume_campaign(session, "spenders-weekly", NOW + 3 * DAY)
    assert resumed.changed and resumed.status == "active"
    row = (await stored_campaigns(store))["spenders-weekly"]
    # Resume leaves schedule_from alone: what to do with the missed slots is the planner's.
    assert (row.status, row.schedule_from) == ("active", NOW)

    async with store.transaction() as session:
        noop = await resume_campaign(session, "spenders-weekly", NOW + 4 * DAY)
    assert not noop.changed and "already active" in noop.message
    assert (await audit_actions(store))[1:] == [
        ("campaign.pause", "spenders-weekly"),
        ("campaign.resume", "spenders-weekly"),
    ]


@applied
async def test_an_archived_campaign_cannot_be_resumed(store: Store, files: Files) -> None:
    (files.folder / "campaigns.toml").write_text(CAMPAIGNS.split("\n\n[[campaign]]")[0], "utf-8")
    await apply_program(store, files.load(), NOW + DAY)
    await launch(store, "old-flash", status="archived")
    for name, how in (("active-daily", "cadence program apply"), ("old-flash", "launch it again")):
        for change in (resume_campaign, pause_campaign):
            with pytest.raises(CampaignError, match="is archived") as caught:
                async with store.transaction() as session:
                    await change(session, name, NOW + 2 * DAY)
            assert how in str(caught.value)
    assert (await stored_campaigns(store))["active-daily"].status == "archived"


@applied
async def test_an_unknown_name_suggests_close_ones(store: Store) -> None:
    async with store.reading() as session:
        with pytest.raises(CampaignError) as caught:
            await campaign_detail(session, "spenders-weekley", NOW, "UTC")
    message = str(caught.value)
    assert "no campaign named `spenders-weekley`" in message
    assert "did you mean `spenders-weekly`" in message
    assert "`cadence campaign list`" in message

    async with store.transaction() as session:
        with pytest.raises(CampaignError) as caught:
            await pause_campaign(session, "zzz", NOW)
    assert "did you mean" not in str(caught.value)
    assert "`cadence campaign list` shows them" in str(caught.value)


async def test_an_empty_store_says_how_to_store_campaigns(store: Store) -> None:
    async with store.reading() as session:
        assert await list_campaigns(session, NOW, "UTC") == []
        with pytest.raises(CampaignError, match="none is stored yet; `cadence program apply`"):
            await campaign_detail(session, "spenders-weekly", NOW, "UTC")
