"""``cadence stages``, ``segments``, ``intel`` and ``bench segments``, run as a user runs them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.test_cli import NOW, Cli


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with 400 demo customers, built once for the module's tests."""
    folder = tmp_path_factory.mktemp("intel-cli")
    cli = Cli(folder, folder / "demo.db")
    cli.ok("db", "upgrade", "--now", NOW)
    cli.ok("demo-data", "--customers", "400", "--days", "365", "--now", NOW)
    return folder / "demo.db"


@pytest.fixture
def demo(tmp_path: Path, demo_store: Path) -> Cli:
    cli = Cli(tmp_path, tmp_path / "demo.db")
    shutil.copy(demo_store, cli.database)
    return cli


def test_stages_refresh_then_show(demo: Cli) -> None:
    refreshed = demo.ok("stages", "refresh", "--now", NOW)
    assert "Stages refreshed for 400 customers: 400 moved" in refreshed
    shown = demo.ok("stages", "show", "--now", NOW)
    for stage in ("registered", "new", "active", "inactive", "reactivated"):
        assert stage in shown
    # A day later nothing happened, so nobody moved.
    assert ": 0 moved" in demo.ok("stages", "refresh", "--now", "2026-11-23T13:00:00Z")


def test_intel_refresh_prints_the_fit_as_one_json_line(demo: Cli) -> None:
    lines = demo.ok("intel", "refresh", "--json", "--now", NOW).strip().splitlines()
    assert len(lines) == 1
    fit = json.loads(lines[0])
    assert set(fit) == {
        "r",
        "alpha",
        "a",
        "b",
        "p",
        "q",
        "v",
        "time_unit",
        "customers",
        "log_likelihood",
    }
    assert fit["time_unit"] == "days" and 0 < fit["customers"] <= 400
    assert all(fit[name] > 0 for name in ("r", "alpha", "a", "b", "p", "q", "v"))
    table = demo.ok("intel", "refresh", "--now", NOW)
    assert "BG/NBD" in table and "Gamma-Gamma" in table and "log-likelihood" in table


def test_segments_refresh_list_and_show(demo: Cli) -> None:
    demo.ok("intel", "refresh", "--now", NOW)
    demo.ok("stages", "refresh", "--now", NOW)
    refreshed = demo.ok("segments", "refresh", "--now", NOW)
    assert "Refreshed 40 segments." in refreshed and "baseline" in refreshed
    again = demo.ok("segments", "refresh", "value-vip", "--now", "2026-11-24T12:00:00Z")
    assert "Refreshed 1 segments." in again and "+" in again
    listed = demo.ok("segments", "list", "--tag", "value", "--now", NOW)
    assert "value-vip" in listed and "prefers-slots" not in listed
    shown = demo.ok("segments", "show", "value-vip", "--now", NOW)
    assert "revenue_total >= 2000" in shown and "size history" in shown


def test_an_unknown_segment_is_one_clear_error(demo: Cli) -> None:
    result = demo("segments", "show", "value-vipp", "--now", NOW)
    assert result.returncode == 1
    assert "no segment named `value-vipp`" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_broken_rule_in_the_program_names_file_and_line(demo: Cli, tmp_path: Path) -> None:
    config = tmp_path / "config"
    demo.ok("init", str(config))
    segments = config / "program" / "segments.toml"
    segments.write_text(
        segments.read_text(encoding="utf-8").replace(
            'rule = "revenue_total >= 2000 and purchases_90d >= 1"',
            'rule = "revenue_totl >= 2000 and purchases_90d >= 1"',
        ),
        encoding="utf-8",
    )
    result = demo("--config", str(config), "segments", "list")
    assert result.returncode == 1
    assert f"{segments}:" in result.stderr
    assert "segment `value-vip`, field `rule`" in result.stderr
    assert "did you mean `revenue_total`?" in result.stderr


def test_bench_segments_prints_one_json_line(tmp_path: Path) -> None:
    cli = Cli(tmp_path, tmp_path / "unused.db")
    # The command and its line, not the speed: a small store (3,000 customers and 60
    # segments took 1.5 s of CPU more, of 6.7 s, for the same fields).
    out = cli.ok("bench", "segments", "--customers", "1000", "--segments", "20")
    lines = out.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result["customers"] == 1000 and result["segments"] == 20
    assert result["ratio"] == pytest.approx(result["seconds"] / result["floor_seconds"], rel=0.01)
    assert {"scores_seconds", "floor_seconds", "meets_target"} <= set(result)
