"""Journey definitions: a sound journey loads; every unsound one is refused with its file,
line, step and what to do, by ``load_program`` and by ``cadence program validate``."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from config import DEFAULT_CONFIG_DIR
from core.program import ProgramError, load_program
from core.settings import Settings
from core.templates import check_templates
from tests.helpers import CADENCE

CART = (
    "[[journey]]\n"
    'name = "cart"\n'
    'entry = { event = "cart_add" }\n'
    'exit_goal = { event = "purchase" }\n'
    'reentry = { after = "1d", max_entries = 3 }\n'
    "steps = [\n"
    '  { id = "wait-purchase", wait_until = { event = "purchase", timeout = "1h" },'
    ' on_event = "exit", on_timeout = "remind" },\n'
    '  { id = "remind", send = "welcome" },\n'
    '  { wait = "1d" },\n'
    '  { id = "recommend", send = "offer_a" },\n'
    "]\n"
)


def _program(tmp_path: Path, journeys: str) -> Path:
    folder = tmp_path / "program"
    shutil.copytree(DEFAULT_CONFIG_DIR / "program", folder)
    (folder / "journeys-test.toml").write_text(journeys, encoding="utf-8")
    return folder


def _problems(tmp_path: Path, journeys: str) -> str:
    folder = _program(tmp_path, journeys)
    with pytest.raises(ProgramError) as caught:
        load_program(folder, DEFAULT_CONFIG_DIR / "templates")
    return str(caught.value)


def _line(text: str, fragment: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if fragment in line)


def test_a_sound_journey_loads_with_its_steps_resolved(tmp_path: Path) -> None:
    program = load_program(_program(tmp_path, CART), DEFAULT_CONFIG_DIR / "templates")
    cart = next(journey for journey in program.journeys if journey.name == "cart")
    assert [step.id for step in cart.steps] == ["wait-purchase", "remind", "step-3", "recommend"]
    assert cart.step("wait-purchase").leads_to == {"on_event": "exit", "on_timeout": "remind"}
    assert cart.step("step-3").leads_to == {"next": "recommend"}
    assert cart.step("recommend").leads_to == {"next": "complete"}
    assert ("offer_a", "email") in program.template_uses()


def test_unknown_targets_templates_segments_and_stages(tmp_path: Path) -> None:
    text = (
        CART.replace('on_timeout = "remind"', 'on_timeout = "remnd"')
        .replace('send = "offer_a"', 'send = "no_such_template"')
        .replace('entry = { event = "cart_add" }', 'entry = { stage = "actve" }')
    )
    message = _problems(tmp_path, text)
    path = tmp_path / "program" / "journeys-test.toml"
    wait_line = _line(text, '"wait-purchase"')
    assert (
        f"{path}:{wait_line}: journey `cart`, step `wait-purchase`, field `on_timeout`: "
        "no step `remnd`" in message
    )
    send_line = _line(text, "no_such_template")
    assert f"{path}:{send_line}: journey `cart`, step `recommend`, field `send`:" in message
    assert "template `no_such_template` lacks" in message
    assert (
        f"{path}:3: journey `cart`, field `entry`, field `stage`: unknown stage `actve`; "
        "did you mean `active`?" in message
    )
    segment = CART.replace('{ event = "cart_add" }', '{ segment = "value-hgh" }')
    message = _problems(tmp_path / "segment", segment)
    assert "unknown segment `value-hgh`; did you mean `value-high`?" in message


def test_an_unreachable_step_is_refused(tmp_path: Path) -> None:
    text = CART.replace(
        '{ id = "remind", send = "welcome" },',
        '{ id = "remind", send = "welcome", next = "recommend" },',
    )
    message = _problems(tmp_path, text)
    line = _line(text, '{ wait = "1d" }')
    assert (
        f"journeys-test.toml:{line}: journey `cart`, step `step-3`, field `id`: "
        "step `step-3` is unreachable from the first step" in message
    )


def test_a_branch_or_wait_until_without_both_outcomes_is_refused(tmp_path: Path) -> None:
    text = CART.replace(', on_event = "exit"', "").replace(
        '{ wait = "1d" },', '{ branch = "purchase_count > 2", on_true = "recommend" },'
    )
    message = _problems(tmp_path, text)
    assert (
        f"journeys-test.toml:{_line(text, 'wait-purchase')}: journey `cart`, step "
        "`wait-purchase`, field `on_event`: a `wait_until` step needs both `on_event` and "
        "`on_timeout`: where each outcome goes" in message
    )
    assert (
        f":{_line(text, 'branch =')}: journey `cart`, step `step-3`, field `on_false`: a "
        "`branch` step needs both `on_true` and `on_false`" in message
    )


def test_a_loop_without_a_wait_is_refused_and_one_with_a_wait_is_not(tmp_path: Path) -> None:
    looping = CART.replace(
        '{ id = "recommend", send = "offer_a" },',
        '{ id = "recommend", send = "offer_a" },\n'
        '  { id = "again", branch = "purchase_count == 0", on_true = "remind", '
        'on_false = "complete" },',
    ).replace('{ wait = "1d" },', "")
    message = _problems(tmp_path, looping)
    assert (
        "journey `cart`, step `remind`, field `next`: the loop `remind` -> `recommend` -> "
        "`again` -> `remind` has no `wait` or `wait_until`: add one to it" in message
    )
    waiting = looping.replace(
        '{ id = "recommend", send = "offer_a" },',
        '{ id = "recommend", send = "offer_a" },\n  { wait = "7d" },',
    )
    load_program(_program(tmp_path / "ok", waiting), DEFAULT_CONFIG_DIR / "templates")


def test_bad_step_shapes_name_the_step_and_its_line(tmp_path: Path) -> None:
    text = CART.replace(
        '{ wait = "1d" },',
        '{ wait = "1 day" },\n  { send = "welcome", wait = "1d" },\n  { exit = "x", colour = 1 },',
    )
    message = _problems(tmp_path, text)
    assert (
        f":{_line(text, '1 day')}: journey `cart`, step 3, field `wait`: must be a duration"
        in message
    )
    both = _line(text, 'send = "welcome", wait')
    assert (
        f":{both}: journey `cart`, step 4, field `step`: "
        "needs exactly one of `send`, `wait`, `wait_until`, `branch`, `exit`" in message
    )
    assert f":{_line(text, 'colour')}: journey `cart`, step 5, field `colour`: unknown field" in (
        message
    )


def test_bad_rules_name_the_step_and_the_line(tmp_path: Path) -> None:
    text = CART.replace(
        '{ wait = "1d" },',
        '{ branch = "purchses_90d > 1", on_true = "recommend", on_false = "exit" },',
    ).replace('{ event = "purchase" }', '{ rule = "revenue_total >" }')
    message = _problems(tmp_path, text)
    assert f":{_line(text, 'purchses')}: journey `cart`, step `step-3`, field `branch`:" in message
    assert "did you mean `purchases_90d`" in message
    assert f":{_line(text, 'exit_goal')}: journey `cart`, field `exit_goal`, field `rule`:" in (
        message
    )


def test_program_validate_refuses_an_unsound_journey(tmp_path: Path) -> None:
    """The command an operator runs: exit 1, every problem listed, no traceback."""
    config = tmp_path / "crm"
    shutil.copytree(DEFAULT_CONFIG_DIR, config, ignore=shutil.ignore_patterns("__*"))
    broken = CART.replace(', on_event = "exit"', "").replace(
        '{ id = "remind", send = "welcome" },',
        '{ id = "remind", send = "welcome", next = "recommend" },',
    )
    (config / "program" / "journeys-test.toml").write_text(broken, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CADENCE_")}
    result = subprocess.run(
        [str(CADENCE), "--config", str(config), "program", "validate"],
        capture_output=True,
        text=True,
        env={**env, "NO_COLOR": "1", "TERM": "dumb"},
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stdout
    assert "Traceback" not in result.stderr
    assert "step `wait-purchase`, field `on_event`: a `wait_until` step needs both" in (
        result.stderr
    )


def test_the_default_program_ships_four_journeys_whose_templates_render() -> None:
    templates = DEFAULT_CONFIG_DIR / "templates"
    program = load_program(DEFAULT_CONFIG_DIR / "program", templates)
    journeys = {journey.name: journey for journey in program.journeys}
    assert set(journeys) == {
        "welcome-series",
        "abandoned-cart",
        "first-purchase-nurture",
        "reactivation",
    }
    welcome = journeys["welcome-series"]
    onboarding = [step for step in welcome.steps if step.id.startswith("onboarding-")]
    assert len(onboarding) == 10 and all(step.kind == "send" for step in onboarding)
    assert welcome.step("step-22").leads_to == {"next": "weekly-tips"}  # the weekly loop
    assert journeys["abandoned-cart"].spec.entry.event == "cart_add"
    uses = program.template_uses()
    assert check_templates(templates, Settings().templates, uses) == []
