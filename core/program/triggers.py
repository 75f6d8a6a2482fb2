"""The compiled rules of a triggered campaign's trigger: one on the event, one on the customer.

Program validation compiles them to report problems; :mod:`core.triggers` compiles the
stored definition the same way when it fires.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from core.program.model import ParamValue, TriggerSpec
from core.rules import EVENT_FIELDS, Rule, RuleError, parse_rule


class TriggerRuleError(ValueError):
    """A trigger's rule does not compile; ``field`` says which one."""

    def __init__(self, field: str, error: RuleError) -> None:
        super().__init__(str(error))
        self.field = field
        self.error = error


@dataclass(frozen=True)
class TriggerRules:
    """A trigger's rules, compiled (None: the trigger has no such rule)."""

    event_rule: Rule | None
    customer_rule: Rule | None


def trigger_rules(trigger: TriggerSpec, params: Mapping[str, ParamValue]) -> TriggerRules:
    """Compile ``trigger``'s rules with the program's ``params``; raises
    :class:`TriggerRuleError` naming the rule that does not compile.

    Compiled once per rule text and params: every firing of the triggers asks again (once
    a simulated hour, once an ingested batch), and parsing cost more than the matching.
    """
    # With each value's type: 1, 1.0 and True are equal keys, but not the same param.
    typed = tuple(sorted((name, type(value).__name__, value) for name, value in params.items()))
    return _compiled(trigger.event_rule, trigger.customer_rule, typed)


@lru_cache(maxsize=1024)
def _compiled(
    event_text: str | None,
    customer_text: str | None,
    typed_params: tuple[tuple[str, str, ParamValue], ...],
) -> TriggerRules:
    """:func:`trigger_rules` of the texts; a rule that fails is not kept, so it fails alike
    every time it is asked for."""
    params = {name: value for name, _, value in typed_params}
    event_rule = customer_rule = None
    if event_text is not None:
        try:
            event_rule = parse_rule(event_text, params=params, catalogue=EVENT_FIELDS)
        except RuleError as error:
            raise TriggerRuleError("event_rule", error) from None
    if customer_text is not None:
        try:
            customer_rule = parse_rule(customer_text, params=params)
        except RuleError as error:
            raise TriggerRuleError("customer_rule", error) from None
    return TriggerRules(event_rule, customer_rule)
