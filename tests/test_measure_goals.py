"""Goals in the program files: unknown event types or fields, empty or negative windows
and unknown values are refused with the file, line and field, by ``program validate`` too."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import DEFAULT_CONFIG_DIR
from core.campaigns import campaign_definition
from core.program import load_program
from core.program.goals import known_event_types
from core.program.model import GoalSpec
from tests.test_cli import Cli
from tests.test_program_campaigns import GOOD, _problems


@pytest.mark.parametrize(
    ("goal", "expected"),
    [
        (
            'event = "purchse", within = "7d"',
            "field `goal`, field `event`: unknown event type `purchse`; did you mean `purchase`?",
        ),
        ('event = "newsletter_signup", within = "7d"', "known: big_loss, big_win, cart_add"),
        ('event = "purchase", within = "0d"', "must be longer than zero, e.g. 7d, not '0d'"),
        ('event = "purchase", within = "-2d"', "must be longer than zero, e.g. 7d, not '-2d'"),
        ('event = "purchase", within = "a week"', "must be a duration such as 30m"),
        (
            'event = "purchase", within = "7d", event_rule = "vaule > 10"',
            "field `event_rule`: unknown field `vaule` at column 1; did you mean `value`?",
        ),
        (
            'event = "purchase", within = "7d", event_rule = \'has_event("login")\'',
            "`has_event` reads a customer's events, not this one's",
        ),
        ('event = "purchase", within = "7d", value = "profit"', "field `value`"),
        ('event = "purchase", within = "7d", worth = 3', "field `worth`: unknown field"),
    ],
)
def test_bad_goals_are_refused_at_their_line(tmp_path: Path, goal: str, expected: str) -> None:
    message = _problems(tmp_path, GOOD + f"goal = {{ {goal} }}\n")
    assert expected in message, message
    assert f"{tmp_path / 'program' / 'campaigns.toml'}:9:" in message, message


def test_goal_events_the_program_names_elsewhere_are_known() -> None:
    program = load_program(DEFAULT_CONFIG_DIR / "program")
    known = known_event_types(program)
    assert {"purchase", "login", "message_opened"} <= known  # the engine's
    assert {"game_result", "page_view"} <= known  # triggers
    assert "cart_add" in known  # a journey's entry and the lead score
    assert "feature_used" in known  # a has_event in a trigger's customer rule
    goals = {c.spec.goal.event for c in program.campaigns if c.spec.goal is not None}
    assert goals <= known


def test_an_unset_goal_option_leaves_the_stored_definition_as_before() -> None:
    program = load_program(DEFAULT_CONFIG_DIR / "program")
    offer = next(c for c in program.campaigns if c.name == "active-hv-monthly-offer")
    assert campaign_definition(offer.spec)["goal"] == {"event": "purchase", "within": "7d"}
    full = GoalSpec(event="purchase", within="7d", event_rule="value > 5", value="revenue")
    assert full.model_dump(mode="json") == {
        "event": "purchase",
        "within": "7d",
        "event_rule": "value > 5",
        "value": "revenue",
    }


def test_program_validate_names_the_bad_goal(tmp_path: Path) -> None:
    cli = Cli(tmp_path, tmp_path / "unused.db")
    cli.ok("init", "mine")
    campaigns = tmp_path / "mine" / "program" / "campaigns.toml"
    text = campaigns.read_text(encoding="utf-8")
    old = 'goal = { event = "login", within = "7d" }'
    campaigns.write_text(text.replace(old, 'goal = { event = "logn", within = "0h" }', 1))
    result = cli("--config", str(tmp_path / "mine"), "program", "validate")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "campaign 4, field `goal`, field `within`: must be longer than zero" in result.stderr
    campaigns.write_text(text.replace(old, 'goal = { event = "logn", within = "7d" }', 1))
    result = cli("--config", str(tmp_path / "mine"), "program", "validate")
    assert result.returncode == 1
    assert "campaign `inactive-winback`, field `goal`, field `event`" in result.stderr
    assert "unknown event type `logn`; did you mean `login`?" in result.stderr
