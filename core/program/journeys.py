"""Journeys as graphs: step ids, where each outcome leads, and what makes a journey unsound.

A journey's steps are a directed graph: each step leads, per outcome, to
another step or to one of the ends (``exit``, ``complete``). The checks here
refuse what could never work as intended: a target that names no step, a
step no customer can reach from the first one, and a cycle on which no step
waits (customers would go round it without end within one tick).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from core.durations import parse_duration
from core.program.model import COMPLETE_TARGET, EXIT_TARGET, JourneySpec, StepSpec
from core.rules import Rule

ENDS = (EXIT_TARGET, COMPLETE_TARGET)
_WAITING_KINDS = ("wait", "wait_until")


def step_ids(spec: JourneySpec) -> list[str]:
    """Each step's id: its own, or ``step-N`` counting from 1."""
    return [step.id or f"step-{index + 1}" for index, step in enumerate(spec.steps)]


def step_campaign_name(journey: str, step: str) -> str:
    """The stored campaign that plans the messages of one send step."""
    return f"journey-{journey}-{step}"


@dataclass(frozen=True)
class JourneyStep:
    """A step with its id, the step (or end) each outcome leads to, and what it needs
    compiled: the branch rule, the wait's or timeout's length."""

    id: str
    spec: StepSpec
    leads_to: dict[str, str]
    """Outcome field (``next``, ``on_event``...) -> step id, ``exit`` or ``complete``."""
    rule: Rule | None = None
    delay: timedelta | None = None

    @property
    def kind(self) -> str:
        return self.spec.kind


@dataclass(frozen=True)
class JourneyDefinition:
    """A journey from the program files, checked, with its steps and rules compiled."""

    spec: JourneySpec
    steps: tuple[JourneyStep, ...]
    exit_rule: Rule | None

    @property
    def name(self) -> str:
        return self.spec.name

    def step(self, step_id: str) -> JourneyStep:
        return next(step for step in self.steps if step.id == step_id)


def resolved_targets(spec: JourneySpec) -> list[dict[str, str]]:
    """Per step, each outcome's target, with an omitted ``next`` read as the following
    step (``complete`` after the last); only for a journey :func:`graph_problems` passed."""
    ids = step_ids(spec)
    resolved = []
    for index, step in enumerate(spec.steps):
        following = ids[index + 1] if index + 1 < len(ids) else COMPLETE_TARGET
        resolved.append(
            {
                outcome: following if target is None else target
                for outcome, target in step.targets().items()
            }
        )
    return resolved


def graph_problems(spec: JourneySpec) -> list[tuple[int | None, str, str]]:
    """What is wrong with the journey's graph: ``(step index or None, field, message)``."""
    ids = step_ids(spec)
    problems: list[tuple[int | None, str, str]] = []
    for index, step_id in enumerate(ids):
        if step_id in ENDS:
            problems.append((index, "id", f"`{step_id}` is reserved for the end of a pass"))
        elif step_id in ids[:index]:
            problems.append((index, "id", f"step `{step_id}` is defined twice"))
    for index, step in enumerate(spec.steps):
        missing = [name for name, target in step.targets().items() if name != "next" and not target]
        if missing:
            both = " and ".join(f"`{name}`" for name in step.targets())
            message = f"a `{step.kind}` step needs both {both}: where each outcome goes"
            problems.append((index, missing[0], message))
    if problems:
        return problems
    targets = resolved_targets(spec)
    known = set(ids)
    for index, leads in enumerate(targets):
        for outcome, target in leads.items():
            if target not in known and target not in ENDS:
                message = f"no step `{target}`; a target is a step id, `exit` or `complete`"
                problems.append((index, outcome, message))
    for index, step in enumerate(spec.steps):
        wait_until = step.wait_until
        if wait_until is not None and wait_until.of_step is not None:
            position = ids.index(wait_until.of_step) if wait_until.of_step in known else None
            if position is None or spec.steps[position].send is None:
                message = f"`of_step` must name a send step, not `{wait_until.of_step}`"
                problems.append((index, "wait_until", message))
    if problems:
        return problems
    edges = {
        ids[index]: [t for t in leads.values() if t in known] for index, leads in enumerate(targets)
    }
    reached = _reachable(ids[0], edges)
    for index, step_id in enumerate(ids):
        if step_id not in reached:
            problems.append((index, "id", f"step `{step_id}` is unreachable from the first step"))
    waiting = {ids[index] for index, step in enumerate(spec.steps) if step.kind in _WAITING_KINDS}
    cycle = _cycle_without(edges, waiting)
    if cycle:
        path = " -> ".join(f"`{step}`" for step in [*cycle, cycle[0]])
        message = f"the loop {path} has no `wait` or `wait_until`: add one to it"
        problems.append((ids.index(cycle[0]), "next", message))
    return problems


def step_delay(step: StepSpec) -> timedelta | None:
    """How long a ``wait`` lasts, or a ``wait_until`` waits at most."""
    text = step.wait or (step.wait_until.timeout if step.wait_until else None)
    return None if text is None else parse_duration(text)


def _reachable(start: str, edges: dict[str, list[str]]) -> set[str]:
    seen = {start}
    todo = [start]
    while todo:
        for target in edges[todo.pop()]:
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def _cycle_without(edges: dict[str, list[str]], waiting: set[str]) -> list[str] | None:
    """A cycle through steps none of which is in ``waiting``, as its steps in order."""
    graph = {
        step: [t for t in targets if t not in waiting]
        for step, targets in edges.items()
        if step not in waiting
    }
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(step: str) -> list[str] | None:
        state[step] = 1
        path.append(step)
        for target in graph[step]:
            if state.get(target) == 1:
                return path[path.index(target) :]
            if target not in state and (found := visit(target)):
                return found
        path.pop()
        state[step] = 2
        return None

    for step in graph:
        if step not in state and (found := visit(step)):
            return found
    return None
