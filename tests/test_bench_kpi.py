"""``cadence bench kpi`` at a tiny size: one JSON line with the timings and what was measured."""

from __future__ import annotations

import json
from pathlib import Path

from core.bench_kpi import AUDIENCE_SHARE, CAMPAIGNS, CONTROL_SHARE
from tests.test_cli import Cli


def test_bench_kpi_prints_one_json_line(tmp_path: Path) -> None:
    cli = Cli(tmp_path, tmp_path / "unused.db")
    lines = cli.ok("bench", "kpi", "--customers", "2000").strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result["benchmark"] == "kpi" and result["database"] == "sqlite"
    assert result["customers"] == 2000 and result["campaigns"] == CAMPAIGNS
    assert result["seconds"] > 0 and result["floor_seconds"] > 0
    # The figures are rounded to milliseconds: the parts and the ratio agree to within that.
    parts = result["snapshot_seconds"] + result["uplift_seconds"]
    assert abs(result["seconds"] - parts) <= 0.002
    ratio = result["seconds"] / result["floor_seconds"]
    assert abs(result["ratio"] - ratio) <= 0.01 * ratio
    assert result["snapshot_rows"] > 0
    # Every campaign's run holds one customer in AUDIENCE_SHARE, one in CONTROL_SHARE kept back.
    members = CAMPAIGNS * 2000 // AUDIENCE_SHARE
    assert result["sent"] + result["kept_back"] == members
    assert result["kept_back"] == members // CONTROL_SHARE
    # Runs planned over four weeks with a 7-day goal: some windows closed, some still open.
    assert "window open" in result["verdicts"] and len(result["verdicts"]) > 1
    assert sum(result["verdicts"].values()) == CAMPAIGNS
