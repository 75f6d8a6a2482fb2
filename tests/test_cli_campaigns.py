"""``cadence program plan/apply`` and ``cadence campaign``, run as a user runs them, on both
backends: the commands read ``CADENCE_DATABASE_URL``, pointed at the test's database."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.test_cli import NOW, Cli, assert_one_line_error


@dataclass
class StoreCli(Cli):
    """``cadence`` against any database URL, with the starter configuration in ``cwd/mine``."""

    url: str = ""

    @property
    def env(self) -> dict[str, str]:
        # Wide enough that no table cell is cut, so the tests read whole names.
        return {**super().env, "CADENCE_DATABASE_URL": self.url, "COLUMNS": "200"}

    @property
    def config(self) -> Path:
        return self.cwd / "mine"

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self("--config", str(self.config), *args, "--now", NOW)

    def out(self, *args: str) -> str:
        return self.ok("--config", str(self.config), *args, "--now", NOW)

    def edit(self, file: str, old: str, new: str) -> None:
        path = self.config / "program" / file
        text = path.read_text(encoding="utf-8")
        assert old in text
        path.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.fixture
def cadence(tmp_path: Path, database_url: str) -> StoreCli:
    cli = StoreCli(tmp_path, tmp_path / "unused.db", url=database_url)
    cli.ok("init", "mine")
    return cli


def test_plan_then_apply_then_nothing_to_apply(cadence: StoreCli) -> None:
    planned = cadence.out("program", "plan")
    assert "would change campaigns: 10 added, 0 changed, 0 removed; segments: 40 added" in planned
    assert "│ + │ active-hv-monthly-offer" in planned and "│ + │ value-vip" in planned
    assert "`cadence segments refresh`" in planned  # the audiences through new segments
    assert "Run `cadence program apply`" in planned

    applied = cadence.out("program", "apply")
    assert "as program version 1: campaigns: 10 added" in applied
    assert "Nothing to apply: the database runs these files." in cadence.out("program", "plan")
    assert "Nothing changed" in cadence.out("program", "apply")

    cadence.edit("campaigns.toml", "priority = 60", "priority = 65")
    changed = cadence.out("program", "plan")
    assert "campaigns: 0 added, 1 changed, 0 removed" in changed
    assert "│ ~ │ active-hv-monthly-offer │ priority" in changed
    assert "0 → 0 (+0)" in changed  # nobody in the store yet, before and after
    assert "as program version 2: campaigns: 0 added, 1 changed" in cadence.out("program", "apply")


def test_plan_validates_the_files_first(cadence: StoreCli) -> None:
    cadence.edit("campaigns.toml", '"0 10 * * MON"', '"0 10 * * MONDAY"')
    for command in ("plan", "apply"):
        result = cadence.run("program", command)
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert "campaign `active-hv-monthly-offer`, field `schedule`" in result.stderr
    assert "No campaigns are stored" in cadence.out("campaign", "list")


def test_list_show_pause_and_resume(cadence: StoreCli) -> None:
    cadence.out("program", "apply")
    listed = cadence.out("campaign", "list")
    assert "10 campaigns (times in UTC)" in listed
    # NOW is Monday 12:00 UTC: the Monday 10:00 offer next runs a week later.
    offer = next(line for line in listed.splitlines() if "active-hv-monthly-offer" in line)
    assert "stage active, segment value-high" in offer and "2026-11-30 10:00" in offer

    shown = cadence.out("campaign", "show", "active-hv-monthly-offer")
    assert "cycle · active · priority 60 · email (marketing) · from program version 1" in shown
    assert "next run 2026-11-30 10:00 UTC" in shown
    assert '"cooldown": "21d"' in shown and "No runs yet." in shown

    assert "Paused `inactive-winback`" in cadence.out("campaign", "pause", "inactive-winback")
    assert "already paused" in cadence.out("campaign", "pause", "inactive-winback")
    paused = next(
        line for line in cadence.out("campaign", "list").splitlines() if "inactive-winback" in line
    )
    assert "paused" in paused
    # Re-applying unchanged files leaves the pause in place.
    assert "Nothing changed" in cadence.out("program", "apply")
    assert "· paused ·" in cadence.out("campaign", "show", "inactive-winback")
    assert "Resumed `inactive-winback`" in cadence.out("campaign", "resume", "inactive-winback")
    assert "· active ·" in cadence.out("campaign", "show", "inactive-winback")


def test_an_unknown_campaign_is_one_clear_error(cadence: StoreCli) -> None:
    cadence.out("program", "apply")
    for command in ("show", "pause", "resume"):
        assert_one_line_error(
            cadence.run("campaign", command, "inactive-winbak"),
            "no campaign named `inactive-winbak`",
            "did you mean `inactive-winback`?",
            "`cadence campaign list`",
        )
