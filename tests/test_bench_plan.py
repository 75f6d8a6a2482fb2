"""``cadence bench plan`` at a tiny size, and the campaigns it plans."""

from __future__ import annotations

import json
from pathlib import Path

from config import DEFAULT_CONFIG_DIR
from core.bench_data import bench_program
from core.bench_plan import bench_campaigns
from core.program import load_program
from tests.test_cli import Cli


def test_bench_plan_prints_one_json_line(tmp_path: Path) -> None:
    cli = Cli(tmp_path, tmp_path / "unused.db")
    out = cli.ok("bench", "plan", "--customers", "2000", "--campaigns", "5", "--segments", "40")
    lines = out.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result["customers"] == 2000 and result["campaigns"] == 5 and result["runs"] == 5
    assert result["queued"] > 0
    assert result["seconds"] > 0 and result["floor_seconds"] > 0 and result["ratio"] > 0
    counted = result["queued"] + result["control"] + result["held"] + result["excluded"]
    assert result["targeted"] == counted
    expected = {"floor_seconds", "target_seconds", "target_ratio", "meets_target", "backend"}
    assert expected <= set(result)


def test_bench_campaigns_mix_segments_stages_and_categories() -> None:
    program = bench_program(load_program(DEFAULT_CONFIG_DIR / "program"), 200)
    specs = bench_campaigns(program, 100)
    assert len({spec.name for spec in specs}) == 100
    targets = [spec.target for spec in specs if spec.target is not None]
    assert len(targets) == 100  # bench campaigns are cycles, each with a target
    segments = [program.segment(target.segment or "") for target in targets]
    assert len({segment.name for segment in segments}) == 100
    assert {segment.spec.stage for segment in segments} == {
        None,
        *(stage.name for stage in program.stages),
    }
    assert sum(spec.category == "transactional" for spec in specs) == 3
    assert len({spec.priority for spec in specs}) > 2
    assert any(target.stage for target in targets) and any(target.rule for target in targets)
    assert all(spec.schedule == "0 10 * * *" and spec.status == "active" for spec in specs)
