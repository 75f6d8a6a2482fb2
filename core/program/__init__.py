"""The marketing program: lifecycle stages, segments, scores, campaigns and journeys, from files.

A program folder (``config/program`` by default, ``program_dir`` in the
settings) holds ``stages.toml`` (``[params]``, the ordered ``[[stage]]``
list and the ``[program]`` table of program-wide KPI targets),
``segments.toml`` plus any ``segments-*.toml`` (``[[segment]]``),
``scores.toml``, ``campaigns.toml`` plus any ``campaigns-*.toml``
(``[[campaign]]``), and ``journeys.toml`` plus any ``journeys-*.toml``
(``[[journey]]``). :func:`load_program` reads and checks all of it,
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

from pydantic import BaseModel, ConfigDict, ValidationError

from core import clock
from core.errors import ConfigError
from core.program.goals import compile_goal, known_event_types
from core.program.journeys import (
    JourneyDefinition,
    JourneyStep,
    graph_problems,
    resolved_targets,
    step_campaign_name,
    step_delay,
    step_ids,
)
from core.program.model import (
    CampaignSpec,
    GoalSpec,
    JourneySpec,
    ParamValue,
    ProgramKpiSpec,
    ProgramSpec,
    ScoresSpec,
    SegmentSpec,
    StageSpec,
)
from core.program.schedules import schedule_trigger
from core.program.triggers import TriggerRuleError, trigger_rules
from core.rules import Rule, RuleError, parse_rule
from core.templates import missing_template_files
from core.tomlfile import line_of, read_toml

STAGES_FILE = "stages.toml"
SCORES_FILE = "scores.toml"
SEGMENT_FILES = ("segments.toml", "segments-*.toml")
CAMPAIGN_FILES = ("campaigns.toml", "campaigns-*.toml")
JOURNEY_FILES = ("journeys.toml", "journeys-*.toml")

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
    journeys: list[JourneyDefinition] = field(default_factory=list)
    kpi: ProgramKpiSpec = field(default_factory=ProgramKpiSpec)
    """Program-wide KPI targets: the ``[program]`` table's ``kpi`` in ``stages.toml``."""

    def template_uses(self) -> set[tuple[str, str]]:
        """Every (template, channel) the campaigns and the journeys' send steps use."""
        uses: set[tuple[str, str]] = {
            (variant, channel)
            for c in self.campaigns
            for variant in c.spec.variants
            for channel in c.spec.channel_choices
        }
        for journey in self.journeys:
            uses.update(
                (step.spec.send, step.spec.channel or "email")
                for step in journey.steps
                if step.spec.send is not None
            )
        return uses

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
        where: str | None = None,
    ) -> None:
        line = line or line_of(text, loc)
        where = where or _where(loc, name)
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
    overall = stages_data.pop("program", {})
    whole = _validate(ProgramSpec, overall, stages_path, stages_text, ("program",), problems)
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
    campaigns, goals = _campaigns(directory, known, problems)
    journeys = _journeys(directory, known, {c.name for c in campaigns}, problems)

    program = None
    if scores is not None:
        program = Program(
            directory,
            params,
            stages,
            segments,
            scores,
            comeback_gap,
            campaigns,
            journeys,
            kpi=whole.kpi if whole else ProgramKpiSpec(),
        )
        # Goals last: whether a goal's event is known depends on the whole program.
        _check_goals(goals, known_event_types(program), params, problems)
    if problems.lines or program is None:
        raise ProgramError("\n".join(["the program has problems:", *problems.lines]))
    return program


@dataclass(frozen=True)
class _Known:
    """What campaigns may refer to."""

    stages: set[str]
    segments: set[str]
    params: dict[str, ParamValue]
    templates_dir: Path | None


@dataclass(frozen=True)
class _GoalSite:
    """A campaign's goal and where it is written, checked once the whole program is read."""

    goal: GoalSpec
    campaign: str
    loc: tuple[str | int, ...]
    path: Path
    text: str


def _campaigns(
    directory: Path, known: _Known, problems: _Problems
) -> tuple[list[CampaignDefinition], list[_GoalSite]]:
    campaigns: list[CampaignDefinition] = []
    goals: list[_GoalSite] = []
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
            if spec.goal is not None:
                goals.append(_GoalSite(spec.goal, spec.name, ("campaign", index), path, text))
    return campaigns, goals


def _check_goals(
    goals: list[_GoalSite],
    known_events: frozenset[str],
    params: dict[str, ParamValue],
    problems: _Problems,
) -> None:
    """Each goal names a known event type and its event rule compiles."""
    for site in goals:
        where = (*site.loc, "goal")
        if site.goal.event not in known_events:
            message = (
                f"{_unknown('event type', site.goal.event, set(known_events))} (a goal's event "
                "is one the engine records or one the program names in a trigger, a journey, "
                "the scores or a has_event rule)"
            )
            problems.add(site.path, site.text, (*where, "event"), message, name=site.campaign)
        try:
            compile_goal(site.goal, params)
        except RuleError as error:
            field = (*where, "event_rule")
            line = _rule_line(site.text, field, error) or line_of(site.text, where)
            problems.add(site.path, site.text, field, str(error), name=site.campaign, line=line)


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
    if target is not None and target.stage is not None and target.stage not in known.stages:
        problem(("target", "stage"), _unknown("stage", target.stage, known.stages))
    if target is not None and target.segment is not None and target.segment not in known.segments:
        problem(("target", "segment"), _unknown("segment", target.segment, known.segments))
    if spec.schedule is not None and (trouble := _schedule_problem(spec.schedule)):
        problem(("schedule",), trouble)
    for variant in spec.variants:
        for channel in spec.channel_choices:
            if trouble := template_problem(variant, channel, known.templates_dir):
                problem(("variants",), trouble)
    if spec.trigger is not None and not _trigger_compiles(spec, loc, path, text, known, problems):
        return None
    if target is None or target.rule is None:
        return CampaignDefinition(spec, None)
    try:
        return CampaignDefinition(spec, parse_rule(target.rule, params=known.params))
    except RuleError as error:
        where = (*loc, "target", "rule")
        line = _rule_line(text, where, error)
        problems.add(path, text, where, str(error), name=spec.name, line=line)
        return None


def _trigger_compiles(
    spec: CampaignSpec,
    loc: tuple[str | int, ...],
    path: Path,
    text: str,
    known: _Known,
    problems: _Problems,
) -> bool:
    """Whether the campaign's trigger rules compile (each problem reported at its line), and
    a transactional triggered message keeps no control group."""
    assert spec.trigger is not None
    if spec.category == "transactional" and spec.control > 0:
        message = "a transactional message is never withheld: set `control = 0`"
        problems.add(path, text, (*loc, "control"), message, name=spec.name)
    try:
        trigger_rules(spec.trigger, known.params)
    except TriggerRuleError as error:
        where = (*loc, "trigger", error.field)
        line = _rule_line(text, where, error.error) or line_of(text, (*loc, "trigger"))
        problems.add(path, text, where, str(error), name=spec.name, line=line)
        return False
    return True


def _journeys(
    directory: Path, known: _Known, campaigns: set[str], problems: _Problems
) -> list[JourneyDefinition]:
    journeys: list[JourneyDefinition] = []
    seen: dict[str, Path] = {}
    files = [path for pattern in JOURNEY_FILES for path in sorted(directory.glob(pattern))]
    for path in files:
        text, data = read_toml(path, "journeys file")
        for index, spec in _journey_specs(path, text, data, problems):
            if spec.name in seen:
                message = f"also defined in {seen[spec.name]}"
                problems.add(path, text, ("journey", index, "name"), message, name=spec.name)
            seen[spec.name] = path
            checker = _JourneyChecker(spec, index, path, text, known, problems)
            journey = checker.check(campaigns)
            if journey is not None:
                journeys.append(journey)
    return journeys


def _journey_specs(
    path: Path, text: str, data: dict[str, Any], problems: _Problems
) -> list[tuple[int, JourneySpec]]:
    """The valid ``[[journey]]`` entries; a problem inside a step names the step and its line."""
    valid = _specs(_JourneyShape, "journey", path, text, data, problems)
    specs = []
    for index, shape in valid:
        entry = data["journey"][index]
        try:
            specs.append((index, JourneySpec.model_validate(entry)))
        except ValidationError as exc:
            name = shape.name
            checker = _JourneyChecker(None, index, path, text, _NOTHING_KNOWN, problems, name)
            for error in exc.errors():
                loc = error["loc"]
                message = (
                    "unknown field" if error["type"] == "extra_forbidden" else error["msg"]
                ).removeprefix("Value error, ")
                if len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int):
                    field = ".".join(str(part) for part in loc[2:]) or "step"
                    checker.step_problem(loc[1], field, message)
                else:
                    checker.problem(tuple(str(part) for part in loc), message)
    return specs


class _JourneyShape(BaseModel):
    """The part of a journey entry needed to name it in messages; the rest is checked by
    :class:`JourneySpec`, per step."""

    model_config = ConfigDict(extra="allow")
    name: str = "?"


_NOTHING_KNOWN = _Known(set(), set(), {}, None)


@dataclass
class _JourneyChecker:
    """Checks one journey against the program and compiles its rules, reporting each
    problem at its step's line."""

    spec: JourneySpec | None
    index: int
    path: Path
    text: str
    known: _Known
    problems: _Problems
    name: str = ""
    failed: bool = False

    def __post_init__(self) -> None:
        if self.spec is not None:
            self.name = self.spec.name

    def check(self, campaigns: set[str]) -> JourneyDefinition | None:
        spec = self.spec
        assert spec is not None
        entry = spec.entry
        if entry.stage is not None and entry.stage not in self.known.stages:
            self.problem(("entry", "stage"), _unknown("stage", entry.stage, self.known.stages))
        if entry.segment is not None and entry.segment not in self.known.segments:
            message = _unknown("segment", entry.segment, self.known.segments)
            self.problem(("entry", "segment"), message)
        for step_index, outcome, message in graph_problems(spec):
            if step_index is None:
                self.problem((outcome,), message)
            else:
                self.step_problem(step_index, outcome, message)
        exit_rule = None
        if spec.exit_goal is not None and spec.exit_goal.rule is not None:
            exit_rule = self.rule(spec.exit_goal.rule, ("exit_goal", "rule"), None)
        ids = step_ids(spec)
        steps = []
        for step_index, (step_spec, leads_to) in enumerate(
            zip(spec.steps, resolved_targets(spec), strict=True)
        ):
            rule = None
            if step_spec.branch is not None:
                rule = self.rule(step_spec.branch, ("branch",), step_index)
            if step_spec.send is not None:
                channel = step_spec.channel or "email"
                trouble = template_problem(step_spec.send, channel, self.known.templates_dir)
                if trouble:
                    self.step_problem(step_index, "send", trouble)
                campaign = step_campaign_name(spec.name, ids[step_index])
                if campaign in campaigns:
                    message = f"its messages' campaign would be `{campaign}`, a campaign's name"
                    self.step_problem(step_index, "id", message)
            steps.append(
                JourneyStep(ids[step_index], step_spec, leads_to, rule, step_delay(step_spec))
            )
        if self.failed:
            return None
        return JourneyDefinition(spec, tuple(steps), exit_rule)

    def rule(self, text: str, field: tuple[str, ...], step_index: int | None) -> Rule | None:
        try:
            return parse_rule(text, params=self.known.params)
        except RuleError as error:
            if step_index is None:
                where: tuple[str | int, ...] = ("journey", self.index, *field)
                line = _rule_line(self.text, where, error)
                self.problem(field, str(error), line=line)
            else:
                line = self.step_line(step_index)
                line = None if line is None else line + (error.line or 1) - 1
                self.step_problem(step_index, field[0], str(error), line=line)
            return None

    def problem(self, field: tuple[str, ...], message: str, *, line: int | None = None) -> None:
        self.failed = True
        loc: tuple[str | int, ...] = ("journey", self.index, *field)
        self.problems.add(self.path, self.text, loc, message, name=self.name, line=line)

    def step_problem(
        self, step_index: int, field: str, message: str, *, line: int | None = None
    ) -> None:
        self.failed = True
        step_id = f"`{step_ids(self.spec)[step_index]}`" if self.spec else step_index + 1
        where = f"journey `{self.name}`, step {step_id}, field `{field}`"
        loc = ("journey", self.index, "steps")
        line = line or self.step_line(step_index)
        self.problems.add(self.path, self.text, loc, message, line=line, where=where)

    def step_line(self, step_index: int) -> int | None:
        """The line where step ``step_index`` of the ``steps = [...]`` array opens."""
        start = line_of(self.text, ("journey", self.index))
        if start is None:
            return None
        lines = self.text.splitlines()
        for number in range(start, len(lines) + 1):
            if re.match(r"\s*steps\s*=", lines[number - 1]):
                return _inline_table_line(lines, number, step_index)
            if number > start and lines[number - 1].lstrip().startswith("[["):
                return None
        return None


def _inline_table_line(lines: list[str], first: int, wanted: int) -> int | None:
    """The line of the ``wanted``-th inline table of the array opened on line ``first``."""
    depth, seen, quote = 0, -1, ""
    for number in range(first, len(lines) + 1):
        line = lines[number - 1]
        if number == first:
            line = line.split("=", 1)[1]
        for char in line:
            if quote:
                quote = "" if char == quote else quote
            elif char in "\"'":
                quote = char
            elif char == "#":
                break
            elif char in "[{":
                depth += 1
                if char == "{" and depth == 2:
                    seen += 1
                    if seen == wanted:
                        return number
            elif char in "]}":
                depth -= 1
                if depth == 0:
                    return None
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
