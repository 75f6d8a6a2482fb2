"""Campaigns in the program files: the default ones load, and every mistake names its file,
line and field, with what to write instead."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from config import DEFAULT_CONFIG_DIR
from core.program import ProgramError, load_program

TEMPLATES = DEFAULT_CONFIG_DIR / "templates"

GOOD = """
[[campaign]]
name = "weekly"
kind = "cycle"
target = { segment = "value-vip" }
channel = "email"
variants = ["offer_a"]
schedule = "0 10 * * MON"
"""


def _folder(tmp_path: Path, campaigns: str) -> Path:
    folder = tmp_path / "program"
    shutil.copytree(DEFAULT_CONFIG_DIR / "program", folder)
    (folder / "campaigns.toml").write_text(campaigns, encoding="utf-8")
    return folder


def _problems(tmp_path: Path, campaigns: str) -> str:
    folder = _folder(tmp_path, campaigns)
    with pytest.raises(ProgramError) as caught:
        load_program(folder, TEMPLATES)
    return str(caught.value)


def test_the_default_campaigns_load_with_their_templates() -> None:
    program = load_program(DEFAULT_CONFIG_DIR / "program", TEMPLATES)
    kinds = {campaign.name: campaign.spec.kind for campaign in program.campaigns}
    assert list(kinds.values()).count("cycle") >= 4 and "ad_hoc" in kinds.values()
    offer = next(c for c in program.campaigns if c.name == "active-hv-monthly-offer")
    assert offer.spec.variants == ["offer_a", "offer_b"]
    assert (offer.spec.priority, offer.spec.cooldown, offer.spec.control) == (60, "21d", 10)
    assert offer.spec.goal is not None and offer.spec.goal.event == "purchase"
    cross_sell = next(c for c in program.campaigns if c.spec.kind == "ad_hoc")
    assert cross_sell.rule is not None and "consent_email" in cross_sell.rule.fields


def test_a_good_campaign_has_sensible_defaults(tmp_path: Path) -> None:
    program = load_program(_folder(tmp_path, GOOD), TEMPLATES)
    [weekly] = program.campaigns
    spec = weekly.spec
    assert (spec.priority, spec.category, spec.control, spec.status) == (
        50,
        "marketing",
        10.0,
        "active",
    )
    assert weekly.rule is None and spec.cooldown is None and spec.goal is None


@pytest.mark.parametrize(
    ("change", "line", "where", "expected"),
    [
        (
            ("value-vip", "value-vp"),
            5,
            "field `target`, field `segment`",
            "did you mean `value-vip`?",
        ),
        (('variants = ["offer_a"]', 'variants = ["offer_z"]'), 7, "field `variants`", "offer_z"),
        (("0 10 * * MON", "0 25 * * MON"), 8, "field `schedule`", "not a schedule: cron"),
        (("0 10 * * MON", "every fortnight"), 8, "field `schedule`", "an interval is `every`"),
        (("0 10 * * MON", "0 10 31 2 *"), 8, "field `schedule`", "never comes round"),
        (('channel = "email"', 'channel = "pigeon"'), 6, "field `channel`", "'email'"),
        (('kind = "cycle"', 'kind = "ad_hoc"'), 2, "campaign 1", "only cycle campaigns"),
    ],
)
def test_a_wrong_reference_or_schedule_names_file_line_and_field(
    tmp_path: Path, change: tuple[str, str], line: int, where: str, expected: str
) -> None:
    message = _problems(tmp_path, GOOD.replace(*change))
    path = tmp_path / "program" / "campaigns.toml"
    assert f"{path}:" in message and where in message and expected in message, message
    assert any(f"{path}:{line}:" in row and where in row for row in message.splitlines()), message


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("control = 150", "less than or equal to 100"),
        ("priority = -1", "greater than or equal to 0"),
        ('cooldown = "3 weeks"', "a duration such as 30m, 12h, 21d or 2w"),
        ('cooldown = "0d"', "must be longer than zero"),
        ("colour = 3", "unknown field"),
        ('goal = { event = "purchase", within = "soon" }', "a duration such as"),
    ],
)
def test_values_out_of_range_are_refused(tmp_path: Path, extra: str, expected: str) -> None:
    message = _problems(tmp_path, GOOD + extra + "\n")
    assert expected in message, message
    assert f"{tmp_path / 'program' / 'campaigns.toml'}:9:" in message, message


def test_structural_mistakes_are_refused(tmp_path: Path) -> None:
    no_schedule = GOOD.replace('schedule = "0 10 * * MON"\n', "")
    assert "needs a `schedule`" in _problems(tmp_path / "a", no_schedule)
    nowhere = GOOD.replace('target = { segment = "value-vip" }', "target = {}")
    assert "needs a `stage`, a `segment` or both" in _problems(tmp_path / "b", nowhere)
    twice = _problems(tmp_path / "c", GOOD + GOOD)
    assert "campaign `weekly`, field `name`: also defined in" in twice
    no_variants = GOOD.replace('variants = ["offer_a"]', "variants = []")
    assert "field `variants`" in _problems(tmp_path / "d", no_variants)


def test_a_target_rule_is_checked_like_any_rule(tmp_path: Path) -> None:
    campaign = GOOD.replace(
        'target = { segment = "value-vip" }',
        'target = { segment = "value-vip", rule = "purchses_90d >= 3" }',
    )
    message = _problems(tmp_path, campaign)
    assert "campaign `weekly`, field `target`, field `rule`" in message
    assert "did you mean `purchases_90d`?" in message


def test_templates_are_checked_only_where_the_folder_is_known(tmp_path: Path) -> None:
    folder = _folder(tmp_path, GOOD.replace('"offer_a"', '"offer_z"'))
    assert [c.name for c in load_program(folder).campaigns] == ["weekly"]
    with pytest.raises(ProgramError, match=r"template `offer_z` lacks offer_z\.subject\.j2"):
        load_program(folder, TEMPLATES)
