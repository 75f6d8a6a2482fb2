"""Program files: the default program loads, and every mistake names its file, line and field."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from config import DEFAULT_CONFIG_DIR
from core.program import ProgramError, load_program


def _copy(tmp_path: Path) -> Path:
    folder = tmp_path / "program"
    shutil.copytree(DEFAULT_CONFIG_DIR / "program", folder)
    return folder


def _problems(folder: Path) -> str:
    with pytest.raises(ProgramError) as caught:
        load_program(folder)
    return str(caught.value)


def test_the_default_program_is_complete() -> None:
    program = load_program(DEFAULT_CONFIG_DIR / "program")
    assert [s.name for s in program.stages] == [
        "registered",
        "new",
        "active",
        "inactive",
        "reactivated",
    ]
    assert program.fallback_stage.name == "registered"
    assert program.dormant_stage is not None and program.dormant_stage.name == "inactive"
    assert len(program.segments) >= 30
    assert program.params["inactive_days"] == 60
    assert all(stage.spec.objective and stage.spec.kpi for stage in program.stages)
    stages = {stage.name for stage in program.stages}
    assert all(s.spec.stage in stages for s in program.segments if s.spec.stage)


def test_a_misspelt_field_in_a_rule_points_at_the_line(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    (folder / "segments-extra.toml").write_text(
        '[[segment]]\nname = "typo"\ndescription = "x"\nrule = """\nrevenue_total > 5\n'
        'and purchses_90d >= 3\n"""\n',
        encoding="utf-8",
    )
    message = _problems(folder)
    assert f"{folder / 'segments-extra.toml'}:6: segment `typo`, field `rule`:" in message
    assert "purchses_90d" in message and "did you mean `purchases_90d`?" in message


def test_unknown_keys_duplicates_and_unknown_stages(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    (folder / "segments-extra.toml").write_text(
        '[[segment]]\nname = "value-vip"\ndescription = "again"\nrule = "true"\n\n'
        '[[segment]]\nname = "odd"\ndescription = "x"\nrule = "true"\ncolour = 3\n\n'
        '[[segment]]\nname = "lost"\ndescription = "x"\nrule = "true"\nstage = "actve"\n',
        encoding="utf-8",
    )
    message = _problems(folder)
    extra = folder / "segments-extra.toml"
    assert f"{extra}:2: segment `value-vip`, field `name`: also defined in" in message
    assert f"{extra}:10: segment 2, field `colour`: unknown field" in message
    assert (
        f"{extra}:16: segment `lost`, field `stage`: unknown stage `actve`; "
        "did you mean `active`?" in message
    )


def test_stage_rules_are_checked_and_one_fallback_is_required(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    stages = folder / "stages.toml"
    text = stages.read_text(encoding="utf-8").replace("fallback = true\n", "")
    stages.write_text(
        text.replace(
            'rule = "days_since(last_active_at) >= inactive_days"',
            'rule = "days_since(last_active_at) >= inactive_dayz"',
        ),
        encoding="utf-8",
    )
    message = _problems(folder)
    assert "exactly one stage needs `fallback = true` (found 0)" in message
    assert "stage `inactive`, field `rule`" in message and "inactive_days" in message


def test_rules_that_look_like_injection_never_load(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    (folder / "segments-extra.toml").write_text(
        '[[segment]]\nname = "evil"\ndescription = "x"\n'
        'rule = "revenue_total > 1; DROP TABLE customers"\n',
        encoding="utf-8",
    )
    assert "segment `evil`, field `rule`" in _problems(folder)


def test_a_missing_program_folder_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ProgramError, match="cadence init"):
        load_program(tmp_path / "nowhere")
