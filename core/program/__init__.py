"""The marketing program: lifecycle stages, segments, scores and campaigns, read from files.

A program folder (``config/program`` by default, ``program_dir`` in the
settings) holds ``stages.toml`` (``[params]`` and the ordered ``[[stage]]``
list), ``segments.toml`` plus any ``segments-*.toml`` (``[[segment]]``),
``scores.toml``, and ``campaigns.toml`` plus any ``campaigns-*.toml``
(``[[campaign]]``). :func:`load_program` reads and checks all of it,
compiling every rule, and reports every problem at once with its file, line
and field.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ValidationError

from core import clock
from core.errors import ConfigError
from core.program.model import CampaignSpec, ParamValue, ScoresSpec, SegmentSpec, StageSpec
from core.program.schedules import schedule_trigger
from core.rules import Rule, RuleError, parse_rule
from core.templates import missing_template_files
from core.tomlfile import line_of, read_toml

STAGES_FILE = "stages.toml"
SCORES_FILE = "scores.toml"
SEGMENT_FILES = ("segments.toml", "segments-*.toml")
CAMPAIGN_FILES = ("campaigns.toml", "campaigns-*.toml")

SpecT = TypeVar("SpecT", bound=BaseModel)


class ProgramError(ConfigError):
    """The program files are invalid; the message lists every problem found."""


@dataclass(frozen=True)
class Stage:
    """A stage with its compiled rule."""

    spec: StageSpec
    rule: Rule

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class SegmentDefinition:
    """A segment with its compiled rule."""

    spec: SegmentSpec
    rule: Rule

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class CampaignDefinition:
    """A campaign with the compiled extra rule of its target, if it has one."""

    spec: CampaignSpec
    rule: Rule | None

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class Program:
    """Everything the program files define, checked and compiled."""

    directory: Path
    params: dict[str, ParamValue]
    stages: list[Stage]
    segments: list[SegmentDefinition]
    scores: ScoresSpec
    comeback_gap_days: float | None = None
    """See :attr:`StageSpec.comeback_gap_days`, with a param name resolved to its value."""
    campaigns: list[CampaignDefinition] = field(default_factory=list)

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)

    @property
    def fallback_stage(self) -> Stage:
        return next(stage for stage in self.stages if stage.spec.fallback)

    @property
    def dormant_stage(self) -> Stage | None:
        return next((stage for stage in self.stages if stage.spec.dormant), None)

    def segment(self, name: str) -> SegmentDefinition:
        for segment in self.segments:
            if segment.name == name:
                return segment
        raise KeyError(name)


@dataclass
class _Problems:
    """Problems found so far, each worded "file:line: where: what"."""

    lines: list[str] = field(default_factory=list)

    def add(
        self,
        path: Path,
        text: str,
        loc: tuple[str | int, ...],
        message: str,
        *,
        name: str | None = None,
        line: int | None = None,
    ) -> None:
        line = line or line_of(text, loc)
        where = _where(loc, name)
        self.lines.append(f"{path}{f':{line}' if line else ''}: {where}: {message}")


def load_program(directory: Path, templates_dir: Path | None = None) -> Program:
    """Read, check and compile the program in ``directory``; raises :class:`ProgramError`.

    With ``templates_dir``, every template a campaign names must be there.
    """
    if not directory.is_dir():
        raise ProgramError(
            f"{directory}: no such program folder; set `program_dir` in the settings "
            "or run `cadence init DIR` for a starter program"
        )
    problems = _Problems()
    stages_path = directory / STAGES_FILE
    stages_text, stages_data = read_toml(stages_path, "stages file")
    params = _params(stages_path, stages_text, stages_data, problems)
    stage_specs = _specs(StageSpec, "stage", stages_path, stages_text, stages_data, problems)
    stages = [
        Stage(spec, rule)
        for index, spec in stage_specs
        if (rule := _rule(spec, params, stages_path, stages_text, ("stage", index), problems))
    ]
    _check_stages([spec for _, spec in stage_specs], stages_path, stages_text, problems)
    comeback_gap = _comeback_gap(stage_specs, params, stages_path, stages_text, problems)

    stage_names = {spec.name for _, spec in stage_specs}
    segments: list[SegmentDefinition] = []
    seen: dict[str, Path] = {}
    for path in _segment_files(directory):
        text, data = read_toml(path, "segments file")
        for index, spec in _specs(SegmentSpec, "segment", path, text, data, problems):
            loc: tuple[str | int, ...] = ("segment", index)
            if spec.name in seen:
                message = f"also defined in {seen[spec.name]}"
                problems.add(path, text, (*loc, "name"), message, name=spec.name)
            seen[spec.name] = path
            if spec.stage is not None and spec.stage not in stage_names:
                message = _unknown("stage", spec.stage, stage_names)
                problems.add(path, text, (*loc, "stage"), message, name=spec.name)
            rule = _rule(spec, params, path, text, loc, problems)
            if rule is not None:
                segments.append(SegmentDefinition(spec, rule))

    scores_path = directory / SCORES_FILE
    scores_text, scores_data = read_toml(scores_path, "scores file")
    scores = _validate(ScoresSpec, scores_data, scores_path, scores_text, (), problems)

    known = _Known(stage_names, set(seen), params, templates_dir)
    campaigns = _campaigns(directory, known, problems)

    if problems.lines or scores is None:
        raise ProgramError("\n".join(["the program has problems:", *problems.lines]))
    return Program(directory, params, stages, segments, scores, comeback_gap, campaigns)


@dataclass(frozen=True)
class _Known:
    """What campaigns may refer to."""

    stages: set[str]
    segments: set[str]
    params: dict[str, ParamValue]
    templates_dir: Path | None


def _campaigns(directory: Path, known: _Known, problems: _Problems) -> list[CampaignDefinition]:
    campaigns: list[CampaignDefinition] = []
    seen: dict[str, Path] = {}
    files = [path for pattern in CAMPAIGN_FILES for path in sorted(directory.glob(pattern))]
    for path in files:
        text, data = read_toml(path, "campaigns file")
        for index, spec in _specs(CampaignSpec, "campaign", path, text, data, problems):
            if spec.name in seen:
                message = f"also defined in {seen[spec.name]}"
                problems.add(path, text, ("campaign", index, "name"), message, name=spec.name)
            seen[spec.name] = path
            campaign = _campaign(spec, ("campaign", index), path, text, known, problems)
            if campaign is not None:
                campaigns.append(campaign)
    return campaigns


def _campaign(
    spec: CampaignSpec,
    loc: tuple[str | int, ...],
    path: Path,
    text: str,
    known: _Known,
    problems: _Problems,
) -> CampaignDefinition | None:
    """The campaign checked against what it refers to, or None if its rule does not compile."""

    def problem(field: tuple[str | int, ...], message: str) -> None:
        problems.add(path, text, (*loc, *field), message, name=spec.name)

    target = spec.target
    if target.stage is not None and target.stage not in known.stages:
        problem(("target", "stage"), _unknown("stage", target.stage, known.stages))
    if target.segment is not None and target.segment not in known.segments:
        problem(("target", "segment"), _unknown("segment", target.segment, known.segments))
    if spec.schedule is not None and (trouble := _schedule_problem(spec.schedule)):
        problem(("schedule",), trouble)
    for variant in spec.variants:
        if trouble := template_problem(variant, spec.channel, known.templates_dir):
            problem(("variants",), trouble)
    if target.rule is None:
        return CampaignDefinition(spec, None)
    try:
        return CampaignDefinition(spec, parse_rule(target.rule, params=known.params))
    except RuleError as error:
        where = (*loc, "target", "rule")
        line = _rule_line(text, where, error)
        problems.add(path, text, where, str(error), name=spec.name, line=line)
        return None


def _schedule_problem(schedule: str) -> str | None:
    """What is wrong with a cycle ``schedule``, or None."""
    now = clock.now()
    try:
        trigger = schedule_trigger(schedule, ZoneInfo("UTC"), now)
    except ValueError as error:
        return str(error)
    if trigger.get_next_fire_time(None, now) is None:
        return f"the schedule {schedule!r} never comes round"
    return None


def template_problem(name: str, channel: str, templates_dir: Path | None) -> str | None:
    """What is missing of template ``name`` for ``channel``, or None (see
    :data:`core.templates.CHANNEL_PARTS` for which files a channel needs)."""
    if templates_dir is None:
        return None
    missing = missing_template_files(name, channel, templates_dir)
    if not missing:
        return None
    return f"template `{name}` lacks {', '.join(missing)} in {templates_dir}"


def _segment_files(directory: Path) -> list[Path]:
    """``segments.toml`` first, then the ``segments-*.toml`` files by name."""
    return [path for pattern in SEGMENT_FILES for path in sorted(directory.glob(pattern))]


def _params(
    path: Path, text: str, data: dict[str, Any], problems: _Problems
) -> dict[str, ParamValue]:
    params = data.get("params", {})
    if not isinstance(params, dict):
        problems.add(path, text, ("params",), "must be a table of names and values")
        return {}
    valid: dict[str, ParamValue] = {}
    for name, value in params.items():
        if isinstance(value, bool | int | float | str):
            valid[name] = value
        else:
            problems.add(path, text, ("params", name), "must be a number, text or true/false")
    return valid


def _specs(
    model: type[SpecT],
    key: str,
    path: Path,
    text: str,
    data: dict[str, Any],
    problems: _Problems,
) -> list[tuple[int, SpecT]]:
    """The valid entries of the array of tables ``[[key]]``, with their indexes."""
    unknown = set(data) - {key, "params"}
    for name in sorted(unknown):
        problems.add(path, text, (name,), f"unknown table; this file holds [[{key}]] entries")
    entries = data.get(key, [])
    if not isinstance(entries, list):
        problems.add(path, text, (key,), f"must be written as [[{key}]] tables")
        return []
    specs = []
    for index, entry in enumerate(entries):
        spec = _validate(model, entry, path, text, (key, index), problems)
        if spec is not None:
            specs.append((index, spec))
    return specs


def _validate(
    model: type[SpecT],
    data: Any,
    path: Path,
    text: str,
    loc: tuple[str | int, ...],
    problems: _Problems,
) -> SpecT | None:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            where = (*loc, *error["loc"])
            message = (
                "unknown field" if error["type"] == "extra_forbidden" else error["msg"]
            ).removeprefix("Value error, ")
            problems.add(path, text, where, message)
        return None


def _rule(
    spec: StageSpec | SegmentSpec,
    params: dict[str, ParamValue],
    path: Path,
    text: str,
    loc: tuple[str | int, ...],
    problems: _Problems,
) -> Rule | None:
    try:
        return parse_rule(spec.rule, params=params)
    except RuleError as error:
        where = (*loc, "rule")
        problems.add(
            path, text, where, str(error), name=spec.name, line=_rule_line(text, where, error)
        )
        return None


def _rule_line(text: str, loc: tuple[str | int, ...], error: RuleError) -> int | None:
    """The file line of a rule error: the ``rule =`` line, moved down into a multi-line rule."""
    key_line = line_of(text, loc)
    if key_line is None:
        return None
    # TOML drops the newline right after an opening triple quote: the rule starts below.
    opens_block = re.search(r"=\s*(\"{3}|'{3})\s*$", text.splitlines()[key_line - 1])
    return key_line + (1 if opens_block else 0) + (error.line or 1) - 1


def _check_stages(specs: list[StageSpec], path: Path, text: str, problems: _Problems) -> None:
    if not specs:
        problems.add(path, text, (), "no [[stage]] defined; a program needs at least one stage")
        return
    names = [spec.name for spec in specs]
    for index, name in enumerate(names):
        if name in names[:index]:
            problems.add(path, text, ("stage", index, "name"), f"stage `{name}` is defined twice")
    fallbacks = [spec.name for spec in specs if spec.fallback]
    if len(fallbacks) != 1:
        problems.add(
            path,
            text,
            ("stage",),
            f"exactly one stage needs `fallback = true` (found {len(fallbacks)}): "
            "customers no stage rule matches go there, so everyone has a stage",
        )
    if sum(spec.dormant for spec in specs) > 1:
        problems.add(path, text, ("stage",), "at most one stage can be `dormant = true`")


def _comeback_gap(
    specs: list[tuple[int, StageSpec]],
    params: dict[str, ParamValue],
    path: Path,
    text: str,
    problems: _Problems,
) -> float | None:
    for index, spec in specs:
        gap = spec.comeback_gap_days
        if gap is None:
            continue
        loc = ("stage", index, "comeback_gap_days")
        if not spec.dormant:
            problems.add(
                path, text, loc, "only the dormant stage has a comeback gap", name=spec.name
            )
            return None
        value = params.get(gap, gap) if isinstance(gap, str) else gap
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            message = (
                f"must be a positive number of days or the name of one in [params], not {gap!r}"
            )
            problems.add(path, text, loc, message, name=spec.name)
            return None
        return float(value)
    return None


def _unknown(kind: str, name: str, known: set[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1)
    hint = f"; did you mean `{close[0]}`?" if close else f"; known: {', '.join(sorted(known))}"
    return f"unknown {kind} `{name}`{hint}"


def _where(loc: tuple[str | int, ...], name: str | None) -> str:
    """``("segment", 3, "rule")`` as "segment `vip`, field `rule`" (or "segment 4")."""
    parts = []
    for index, part in enumerate(loc):
        if isinstance(part, int):
            continue
        following = loc[index + 1] if index + 1 < len(loc) else None
        if isinstance(following, int):
            parts.append(f"{part} `{name}`" if name else f"{part} {following + 1}")
        else:
            parts.append(f"field `{part}`")
    return ", ".join(parts) or "file"
