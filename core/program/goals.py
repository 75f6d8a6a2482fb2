"""A campaign's goal, compiled: its event type, window, rule on the goal event and value.

Program validation compiles every goal to report its problems and checks that the goal's
event type is one the engine or the program knows; :mod:`core.measure.goals` compiles a
stored campaign's goal the same way when it measures.

Event types are free-form (the business sends whatever it tracks), so "known" means: one
the engine reads or writes (:data:`core.event_types.ENGINE_TYPES`), or one the program
names somewhere else (a trigger, a journey, the scores, a ``has_event`` in a rule). A goal
event nothing else mentions is much more likely a typo than a new kind of event.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from core.durations import parse_duration
from core.event_types import ENGINE_TYPES
from core.program.model import GoalSpec, ParamValue
from core.program.triggers import TriggerRuleError, trigger_rules
from core.rules import EVENT_FIELDS, Rule, parse_rule
from core.rules.nodes import HasEvent, walk

if TYPE_CHECKING:
    from core.program import Program


@dataclass(frozen=True)
class Goal:
    """A goal ready to measure: an ``event`` within ``within`` after the run, matching
    ``event_rule`` when there is one; ``revenue``: the events' values are summed."""

    event: str
    within: timedelta
    event_rule: Rule | None
    revenue: bool


def compile_goal(spec: GoalSpec, params: Mapping[str, ParamValue]) -> Goal:
    """``spec`` compiled with the program's ``params``; raises
    :class:`core.rules.RuleError` when its event rule does not compile."""
    within = parse_duration(spec.within)
    assert within is not None, "GoalSpec validated the window"
    rule = None
    if spec.event_rule is not None:
        rule = parse_rule(spec.event_rule, params=params, catalogue=EVENT_FIELDS)
    return Goal(spec.event, within, rule, spec.value == "revenue")


def known_event_types(program: Program) -> frozenset[str]:
    """Every event type a goal may name: the engine's and those the program names."""
    named: set[str] = set(ENGINE_TYPES)
    named.update(program.scores.engagement.points, program.scores.lead.points)
    rules: list[Rule | None] = [stage.rule for stage in program.stages]
    rules += [segment.rule for segment in program.segments]
    for campaign in program.campaigns:
        rules.append(campaign.rule)
        trigger = campaign.spec.trigger
        if trigger is None:
            continue
        if trigger.event is not None:
            named.add(trigger.event)
        try:
            compiled = trigger_rules(trigger, program.params)
        except TriggerRuleError:
            continue  # reported where the campaign was checked
        rules += [compiled.event_rule, compiled.customer_rule]
    for journey in program.journeys:
        spec = journey.spec
        named.update(
            event
            for event in (
                spec.entry.event,
                spec.exit_goal.event if spec.exit_goal else None,
                *(step.wait_until.event for step in spec.steps if step.wait_until),
            )
            if event is not None
        )
        rules += [journey.exit_rule, *(step.rule for step in journey.steps)]
    named.update(_has_event_types(rule for rule in rules if rule is not None))
    return frozenset(named)


def _has_event_types(rules: Iterable[Rule]) -> Iterator[str]:
    for rule in rules:
        yield from (node.event_type for node in walk(rule.tree) if isinstance(node, HasEvent))
