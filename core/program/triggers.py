"""The compiled rules of a triggered campaign's trigger: one on the event, one on the customer.

Program validation compiles them to report problems; :mod:`core.triggers` compiles the
stored definition the same way when it fires.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

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
    :class:`TriggerRuleError` naming the rule that does not compile."""
    event_rule = customer_rule = None
    if trigger.event_rule is not None:
        try:
            event_rule = parse_rule(trigger.event_rule, params=params, catalogue=EVENT_FIELDS)
        except RuleError as error:
            raise TriggerRuleError("event_rule", error) from None
    if trigger.customer_rule is not None:
        try:
            customer_rule = parse_rule(trigger.customer_rule, params=params)
        except RuleError as error:
            raise TriggerRuleError("customer_rule", error) from None
    return TriggerRules(event_rule, customer_rule)
