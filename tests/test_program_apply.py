"""``plan`` and ``apply``: the program files against the stored campaigns and segments."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from config import DEFAULT_CONFIG_DIR
from core.campaigns import campaign_definition, definition_digest, pause_campaign, store_campaign
from core.db import Store
from core.errors import CampaignError
from core.lifecycle import refresh_stages
from core.models import AuditEntry, Campaign, ProgramVersion, Segment
from core.program import Program, load_program
from core.program.apply import (
    AudienceEstimate,
    ProgramPlan,
    apply_program,
    plan_program,
    program_digest,
)
from core.program.model import CampaignSpec
from core.segments import refresh_segments
from tests.conftest import NOW
from tests.helpers import add_customer
from tests.test_segments import _people as segment_test_people

DAY = timedelta(days=1)
TEMPLATES = DEFAULT_CONFIG_DIR / "templates"

SEGMENTS = """
[[segment]]
name = "spenders"
description = "Spent 100 or more"
rule = "revenue_total >= 100"

[[segment]]
name = "big-spenders"
description = "Active and spent 500 or more"
stage = "active"
rule = "revenue_total >= 500"
"""

CAMPAIGNS = """
[[campaign]]
name = "spenders-weekly"
kind = "cycle"
target = { segment = "spenders" }
channel = "email"
variants = ["offer_a"]
schedule = "0 10 * * MON"
priority = 50

[[campaign]]
name = "active-daily"
kind = "cycle"
target = { stage = "active" }
channel = "email"
variants = ["offer_b"]
schedule = "0 9 * * *"
priority = 40

[[campaign]]
name = "spenders-adhoc"
kind = "ad_hoc"
target = { segment = "spenders", rule = "revenue_total >= 400" }
channel = "email"
variants = ["offer_b"]
priority = 50
"""
CAMPAIGN_NAMES = ["spenders-weekly", "active-daily", "spenders-adhoc"]


@dataclass(frozen=True)
class Files:
    """A copy of the default program with the test's segments and campaigns, to edit."""

    folder: Path

    @classmethod
    def create(cls, tmp_path: Path) -> Files:
        folder = tmp_path / "program"
        shutil.copytree(DEFAULT_CONFIG_DIR / "program", folder)
        (folder / "segments.toml").write_text(SEGMENTS, encoding="utf-8")
        (folder / "campaigns.toml").write_text(CAMPAIGNS, encoding="utf-8")
        (folder / "journeys.toml").unlink()  # they enter default segments left out here
        return cls(folder)

    def load(self) -> Program:
        return load_program(self.folder, TEMPLATES)

    def edit(self, file: str, old: str, new: str) -> Program:
        """Replace ``old`` (which must be there) by ``new`` in ``file``; the program then."""
        path = self.folder / file
        text = path.read_text(encoding="utf-8")
        assert old in text, f"{old!r} is not in {file}"
        path.write_text(text.replace(old, new), encoding="utf-8")
        return self.load()


@pytest.fixture
def files(tmp_path: Path) -> Files:
    return Files.create(tmp_path)


async def plan(store: Store, program: Program, now: datetime = NOW) -> ProgramPlan:
    async with store.reading() as session:
        return await plan_program(session, program, now)


async def stored_campaigns(store: Store) -> dict[str, Campaign]:
    async with store.reading() as session:
        return {row.name: row for row in (await session.execute(select(Campaign))).scalars()}


async def table_count(store: Store, model: type[ProgramVersion] | type[AuditEntry]) -> int:
    async with store.reading() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


async def launch(store: Store, name: str, status: str = "active") -> None:
    """Store a campaign as a launch by hand stores it (not from the program files)."""
    spec = CampaignSpec.model_validate(
        {
            "name": name,
            "kind": "ad_hoc",
            "target": {"segment": "spenders"},
            "channel": "email",
            "variants": ["offer_a"],
            "priority": 90,
            "status": status,
        }
    )
    async with store.transaction() as session:
        store_campaign(session, spec, origin="launch", now=NOW - DAY)


async def people(store: Store, program: Program) -> None:
    """Three active customers (spent 500, 150, 20) and one inactive (900), placed in their
    stages and segments: spenders = 3, big-spenders = 1, stage active = 3."""
    await segment_test_people(store)  # rich 500, poor 20, both active; gone 900, inactive
    active: dict[str, Any] = {"first_purchase_at": NOW - 200 * DAY, "last_event_at": NOW - DAY}
    await add_customer(store, "mid", NOW - 300 * DAY, revenue_total=150, **active)
    async with store.transaction() as session:
        await refresh_stages(session, program, NOW)
    await refresh_segments(store, program, NOW)


def names(changes: tuple[Any, ...]) -> list[str]:
    return [change.name for change in changes]


# ----------------------------------------------------------------------- digest


def test_the_digest_follows_content_not_file_order(files: Files) -> None:
    program = files.load()
    assert program_digest(program) == program_digest(files.load())
    reordered = CAMPAIGNS.split("[[campaign]]")
    (files.folder / "campaigns.toml").write_text(
        "[[campaign]]".join([reordered[0], *reversed(reordered[1:])]), encoding="utf-8"
    )
    moved = files.load()
    assert [c.name for c in moved.campaigns] != [c.name for c in program.campaigns]
    assert program_digest(moved) == program_digest(program)
    changed_param = files.edit("stages.toml", "inactive_days = 60", "inactive_days = 61")
    assert program_digest(changed_param) != program_digest(program)


def test_an_audience_estimate_reads_as_before_arrow_after() -> None:
    assert AudienceEstimate(1234, 1456).describe() == "1,234 → 1,456 (+222)"
    assert AudienceEstimate(1456, 1234).describe() == "1,456 → 1,234 (-222)"
    assert AudienceEstimate(5, 5).describe() == "5 → 5 (+0)"
    assert AudienceEstimate(None, 1456).describe() == "1,456"
    assert AudienceEstimate(3, None).describe() == "3 → ?"
    assert AudienceEstimate(None, None).describe() == "?"
    assert AudienceEstimate(3, None).delta is None and AudienceEstimate(3, 7).delta == 4


# ------------------------------------------------------------------------- plan


async def test_a_fresh_database_plans_everything_as_added(store: Store, files: Files) -> None:
    program = files.load()
    fresh = await plan(store, program)
    assert fresh.changed and not fresh.up_to_date
    assert fresh.applied_digest is None and fresh.digest == program_digest(program)
    assert names(fresh.campaigns.added) == CAMPAIGN_NAMES
    assert names(fresh.segments.added) == ["spenders", "big-spenders"]
    assert not (fresh.campaigns.changed or fresh.campaigns.removed or fresh.segments.removed)
    audiences = {change.name: change.audience for change in fresh.campaigns.added}
    # Segments not stored yet have no members to count; a stage can be counted (empty).
    assert audiences["spenders-weekly"] == AudienceEstimate(None, None)
    assert audiences["active-daily"] == AudienceEstimate(None, 0)
    assert fresh.changes() == {
        "campaigns": {"added": CAMPAIGN_NAMES, "changed": [], "removed": []},
        "segments": {"added": ["spenders", "big-spenders"], "changed": [], "removed": []},
    }


async def test_applied_files_plan_nothing(store: Store, files: Files) -> None:
    program = files.load()
    result = await apply_program(store, program, NOW)
    assert result.applied and result.plan.changed
    after = await plan(store, program, NOW + DAY)
    assert after.up_to_date and not after.changed
    assert after.applied_digest == after.digest == program_digest(program)


# ------------------------------------------------------------------------ apply


async def test_apply_stores_campaigns_and_records_one_version(
    store: Store, files: Files, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CADENCE_ACTOR", "alice")
    program = files.load()
    result = await apply_program(store, program, NOW)

    async with store.reading() as session:
        version = (await session.execute(select(ProgramVersion))).scalar_one()
        audit = (await session.execute(select(AuditEntry))).scalar_one()
        segments = set((await session.execute(select(Segment.name))).scalars())
    assert result.version == version.id
    assert (version.applied_at, version.actor, version.digest) == (
        NOW,
        "alice",
        program_digest(program),
    )
    assert version.changes == result.plan.changes()
    assert (audit.action, audit.actor, audit.target) == (
        "program.apply",
        "alice",
        f"program version {version.id}",
    )
    assert segments == {"spenders", "big-spenders"}

    stored = await stored_campaigns(store)
    assert sorted(stored) == sorted(CAMPAIGN_NAMES)
    for definition in program.campaigns:
        row, spec = stored[definition.name], definition.spec
        assert row.definition == campaign_definition(spec)
        assert row.digest == definition_digest(campaign_definition(spec))
        assert (row.origin, row.status, row.program_version_id) == ("program", "active", version.id)
        assert (row.kind, row.priority, row.channel, row.category) == (
            spec.kind,
            spec.priority,
            spec.channel,
            spec.category,
        )
        assert row.schedule_from == row.created_at == row.updated_at == NOW


async def test_applying_the_same_files_twice_changes_nothing(store: Store, files: Files) -> None:
    program = files.load()
    await apply_program(store, program, NOW)

    async def snapshot() -> list[tuple[Any, ...]]:
        async with store.reading() as session:
            campaigns = await session.execute(
                select(
                    Campaign.name,
                    Campaign.status,
                    Campaign.updated_at,
                    Campaign.schedule_from,
                    Campaign.program_version_id,
                ).order_by(Campaign.name)
            )
            segments = await session.execute(
                select(Segment.name, Segment.updated_at).order_by(Segment.name)
            )
            return [*campaigns.all(), *segments.all()]

    before = await snapshot()
    again = await apply_program(store, files.load(), NOW + DAY)
    assert not again.applied and again.version is None and again.plan.up_to_date
    assert await snapshot() == before
    assert await table_count(store, ProgramVersion) == 1
    assert await table_count(store, AuditEntry) == 1


async def test_a_changed_param_alone_records_a_version(store: Store, files: Files) -> None:
    await apply_program(store, files.load(), NOW)
    program = files.edit("stages.toml", "inactive_days = 60", "inactive_days = 61")
    planned = await plan(store, program, NOW + DAY)
    assert not planned.changed and not planned.up_to_date
    result = await apply_program(store, program, NOW + DAY)
    assert result.applied and await table_count(store, ProgramVersion) == 2
    assert all(row.updated_at == NOW for row in (await stored_campaigns(store)).values())


async def test_a_changed_campaign_shows_its_audience_change(store: Store, files: Files) -> None:
    program = files.load()
    await apply_program(store, program, NOW)
    await people(store, program)

    whales = '[[segment]]\nname = "whales"\ndescription = "Big"\nrule = "revenue_total > 800"'
    (files.folder / "segments.toml").write_text(f"{SEGMENTS}\n{whales}\n", encoding="utf-8")
    files.edit(
        "campaigns.toml",
        'target = { segment = "spenders" }\nchannel = "email"\nvariants = ["offer_a"]\n'
        'schedule = "0 10 * * MON"\npriority = 50',
        'target = { segment = "big-spenders" }\nchannel = "email"\nvariants = ["offer_a"]\n'
        'schedule = "0 10 * * MON"\npriority = 80',
    )
    files.edit(
        "campaigns.toml",
        'target = { stage = "active" }',
        'target = { stage = "active", rule = "revenue_total >= 100" }',
    )
    edited = files.edit(
        "campaigns.toml",
        'target = { segment = "spenders", rule = "revenue_total >= 400" }',
        'target = { segment = "whales", rule = "revenue_total >= 400" }',
    )

    changed = await plan(store, edited, NOW + DAY)
    assert names(changed.segments.added) == ["whales"]
    assert not (changed.campaigns.added or changed.campaigns.removed)
    by_name = {change.name: change for change in changed.campaigns.changed}
    assert sorted(by_name) == sorted(CAMPAIGN_NAMES)
    weekly = by_name["spenders-weekly"]
    assert weekly.fields == ("priority", "target")
    assert weekly.audience == AudienceEstimate(3, 1)
    assert weekly.audience.describe() == "3 → 1 (-2)"
    assert by_name["active-daily"].audience == AudienceEstimate(3, 2)
    # Before: spenders who spent 400 (rich, gone); after: a segment not refreshed yet.
    assert by_name["spenders-adhoc"].audience == AudienceEstimate(2, None)

    result = await apply_program(store, edited, NOW + DAY)
    stored = await stored_campaigns(store)
    weekly_row = stored["spenders-weekly"]
    assert (weekly_row.priority, weekly_row.definition["target"]["segment"]) == (80, "big-spenders")
    assert weekly_row.updated_at == NOW + DAY and weekly_row.program_version_id == result.version
    # The schedule is unchanged and the campaign was active: its slots since NOW stay due.
    assert weekly_row.schedule_from == NOW and weekly_row.created_at == NOW


async def test_a_changed_schedule_starts_from_the_apply(store: Store, files: Files) -> None:
    await apply_program(store, files.load(), NOW)
    program = files.edit("campaigns.toml", '"0 10 * * MON"', '"0 10 * * TUE"')
    planned = await plan(store, program, NOW + DAY)
    [change] = planned.campaigns.changed
    assert (change.name, change.fields) == ("spenders-weekly", ("schedule",))
    await apply_program(store, program, NOW + DAY)
    stored = await stored_campaigns(store)
    assert stored["spenders-weekly"].schedule_from == NOW + DAY
    assert stored["active-daily"].schedule_from == NOW


async def test_a_changed_segment_is_planned_and_synced(store: Store, files: Files) -> None:
    await apply_program(store, files.load(), NOW)
    program = files.edit("segments.toml", '"revenue_total >= 100"', '"revenue_total >= 200"')
    planned = await plan(store, program, NOW + DAY)
    assert [(c.name, c.fields) for c in planned.segments.changed] == [("spenders", ("rule",))]
    assert planned.campaigns.empty
    await apply_program(store, program, NOW + DAY)
    async with store.reading() as session:
        rule = (
            await session.execute(select(Segment.rule).where(Segment.name == "spenders"))
        ).scalar_one()
    assert rule == "revenue_total >= 200"
    assert (await plan(store, program, NOW + 2 * DAY)).up_to_date


async def test_a_removed_campaign_is_archived_and_comes_back(store: Store, files: Files) -> None:
    original = files.load()
    first = await apply_program(store, original, NOW)
    adhoc = CAMPAIGNS[CAMPAIGNS.index('[[campaign]]\nname = "spenders-adhoc"') :]
    without = files.edit("campaigns.toml", adhoc, "")
    (files.folder / "segments.toml").write_text(SEGMENTS.split("\n\n[[segment]]")[0], "utf-8")
    without = files.load()

    planned = await plan(store, without, NOW + DAY)
    assert names(planned.campaigns.removed) == ["spenders-adhoc"]
    assert names(planned.segments.removed) == ["big-spenders"]
    assert planned.campaigns.removed[0].audience is None
    second = await apply_program(store, without, NOW + DAY)
    stored = await stored_campaigns(store)
    gone = stored["spenders-adhoc"]
    assert (gone.status, gone.updated_at, gone.program_version_id) == (
        "archived",
        NOW + DAY,
        second.version,
    )
    assert stored["spenders-weekly"].program_version_id == first.version
    assert (await plan(store, without, NOW + 2 * DAY)).up_to_date

    (files.folder / "campaigns.toml").write_text(CAMPAIGNS, encoding="utf-8")
    (files.folder / "segments.toml").write_text(SEGMENTS, encoding="utf-8")
    back = await plan(store, original, NOW + 2 * DAY)
    assert names(back.campaigns.added) == ["spenders-adhoc"]
    assert names(back.segments.added) == ["big-spenders"]
    await apply_program(store, files.load(), NOW + 2 * DAY)
    restored = (await stored_campaigns(store))["spenders-adhoc"]
    assert (restored.status, restored.schedule_from) == ("active", NOW + 2 * DAY)


async def test_a_pause_persists_until_the_spec_changes(store: Store, files: Files) -> None:
    await apply_program(store, files.load(), NOW)
    async with store.transaction() as session:
        await pause_campaign(session, "spenders-weekly", NOW + DAY)

    unchanged = await apply_program(store, files.load(), NOW + 2 * DAY)
    assert not unchanged.applied
    # A changed param records a version but changes no campaign: the pause stays too.
    other = files.edit("stages.toml", "inactive_days = 60", "inactive_days = 61")
    assert (await apply_program(store, other, NOW + 2 * DAY)).applied
    assert (await stored_campaigns(store))["spenders-weekly"].status == "paused"

    changed = files.edit("campaigns.toml", "priority = 50", "priority = 55")
    await apply_program(store, changed, NOW + 3 * DAY)
    row = (await stored_campaigns(store))["spenders-weekly"]
    # The spec's status again, and the slots missed while paused are not owed.
    assert (row.status, row.priority, row.schedule_from) == ("active", 55, NOW + 3 * DAY)


async def test_a_spec_status_is_applied(store: Store, files: Files) -> None:
    await apply_program(store, files.load(), NOW)
    paused = files.edit(
        "campaigns.toml", 'schedule = "0 9 * * *"', 'schedule = "0 9 * * *"\nstatus = "paused"'
    )
    planned = await plan(store, paused, NOW + DAY)
    assert [(c.name, c.fields) for c in planned.campaigns.changed] == [
        ("active-daily", ("status",))
    ]
    await apply_program(store, paused, NOW + DAY)
    assert (await stored_campaigns(store))["active-daily"].status == "paused"


async def test_launched_campaigns_are_left_alone(store: Store, files: Files) -> None:
    await launch(store, "flash-sale")
    await launch(store, "old-flash", status="archived")
    before = await stored_campaigns(store)
    await apply_program(store, files.load(), NOW)
    (files.folder / "campaigns.toml").write_text("", encoding="utf-8")
    empty = files.load()
    planned = await plan(store, empty, NOW + DAY)
    assert sorted(names(planned.campaigns.removed)) == sorted(CAMPAIGN_NAMES)
    await apply_program(store, empty, NOW + DAY)
    after = await stored_campaigns(store)
    for name in ("flash-sale", "old-flash"):
        old, new = before[name], after[name]
        assert (new.status, new.updated_at, new.program_version_id, new.definition) == (
            old.status,
            old.updated_at,
            None,
            old.definition,
        )


async def test_a_program_campaign_may_not_take_a_launched_name(store: Store, files: Files) -> None:
    await launch(store, "spenders-weekly")
    program = files.load()
    planned = await plan(store, program)
    assert planned.conflicts == ("spenders-weekly",)
    assert "spenders-weekly" not in names(planned.campaigns.added)
    with pytest.raises(CampaignError, match=r"`spenders-weekly`.*rename it in the files"):
        await apply_program(store, program, NOW)
    assert await table_count(store, ProgramVersion) == 0
    async with store.reading() as session:
        assert (await session.execute(select(func.count()).select_from(Segment))).scalar_one() == 0


async def test_a_stored_target_that_no_longer_resolves_counts_as_unknown(
    store: Store, files: Files
) -> None:
    await apply_program(store, files.load(), NOW)
    # A stored rule reading a param the files no longer define cannot be counted.
    async with store.transaction() as session:
        row = (
            await session.execute(select(Campaign).where(Campaign.name == "spenders-adhoc"))
        ).scalar_one()
        definition = dict(row.definition)
        definition["target"] = {"segment": "spenders", "rule": "revenue_total >= no_such_param"}
        await session.execute(
            update(Campaign)
            .where(Campaign.id == row.id)
            .values(definition=definition, digest=definition_digest(definition))
        )
    planned = await plan(store, files.load(), NOW + DAY)
    [change] = planned.campaigns.changed
    assert change.name == "spenders-adhoc" and change.audience == AudienceEstimate(None, 0)
