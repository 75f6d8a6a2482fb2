"""A parsed, type-checked rule and what can be done with it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Select, select

from core.clock import as_utc
from core.rules.checker import ParamValue, check
from core.rules.compiler import CATALOGUE, RuleSource, compile_condition, join_rule_tables
from core.rules.fields import CUSTOMERS, EVENTS, FIELDS, FieldSpec
from core.rules.nodes import Field, HasEvent, Node, walk
from core.rules.parser import parse
from core.rules.reference import CustomerFacts, evaluate


@dataclass(frozen=True)
class Rule:
    """A rule ready to run: its source, typed tree, and the fields and tables it reads.

    Build one with :func:`parse_rule`. ``tables`` names every table the
    rule reads (``customers`` always); :func:`join_rule_tables` joins the
    per-customer ones among them.
    """

    text: str
    tree: Node
    fields: frozenset[str]
    tables: frozenset[str]

    def condition(self, now: datetime, source: RuleSource = CATALOGUE) -> ColumnElement[bool]:
        """The rule as one SQL condition at ``now``: by default over ``customers`` and the
        tables it needs, or over another ``source`` such as a rule snapshot."""
        return compile_condition(self.tree, as_utc(now), source)

    def select_customers(self, now: datetime) -> Select[int]:
        """``SELECT customers.id`` of every customer the rule matches at ``now``."""
        return (
            select(CUSTOMERS.c.id)
            .select_from(join_rule_tables(CUSTOMERS, self.tables))
            .where(self.condition(now))
        )

    def evaluate(self, customer: CustomerFacts, now: datetime) -> bool:
        """Whether the rule is true for one customer, in Python: the tests' oracle."""
        return evaluate(self.tree, customer, as_utc(now)) is True


def parse_rule(
    text: str,
    *,
    params: Mapping[str, ParamValue] | None = None,
    catalogue: Mapping[str, FieldSpec] = FIELDS,
) -> Rule:
    """Parse and type-check ``text``; raise :class:`RuleError` pointing at the first problem.

    ``params`` are the program's named constants (e.g. ``{"inactive_days": 60}``);
    a rule reads each as a literal of its value's type. ``catalogue`` is what the rule
    reads: the customer fields, or :data:`~core.rules.fields.EVENT_FIELDS` for a rule on
    one event (compile it over :data:`~core.rules.compiler.EVENT_SOURCE`).
    """
    tree = check(parse(text), text, params or {}, catalogue)
    fields = frozenset(node.name for node in walk(tree) if isinstance(node, Field))
    tables = {CUSTOMERS.name}.union(*(catalogue[name].tables for name in fields))
    if any(isinstance(node, HasEvent) for node in walk(tree)):
        tables.add(EVENTS.name)
    return Rule(text, tree, fields, frozenset(tables))
