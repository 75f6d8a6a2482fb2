"""The safe rule language: parse a rule, check its types, compile it to SQL.

Rules define lifecycle stages, segments, triggers and goals::

    stage == "active" and purchases_90d >= 3 and attr("country") in ["PT", "PL"]
        and days_since(last_login_at) <= 14 and not has_event("cart_add", within="1d")

Nothing in a rule is ever executed: the text is tokenized and parsed by
hand against a fixed grammar, names are checked against the field catalogue
and the function whitelist, and every value reaches the database as a bound
parameter. :func:`parse_rule` is the entry point; the grammar is in
:mod:`core.rules.parser`.
"""

from core.rules.compiler import EVENT_SOURCE, join_rule_tables
from core.rules.errors import RuleError
from core.rules.fields import EVENT_FIELDS, FIELD_NAMES, FIELDS, FieldSpec, describe_fields
from core.rules.functions import FUNCTION_NAMES, FUNCTIONS, FunctionSpec
from core.rules.nodes import Type
from core.rules.parser import MAX_DEPTH, MAX_RULE_LENGTH
from core.rules.reference import CustomerFacts
from core.rules.rule import Rule, parse_rule

__all__ = [
    "EVENT_FIELDS",
    "EVENT_SOURCE",
    "FIELDS",
    "FIELD_NAMES",
    "FUNCTIONS",
    "FUNCTION_NAMES",
    "MAX_DEPTH",
    "MAX_RULE_LENGTH",
    "CustomerFacts",
    "FieldSpec",
    "FunctionSpec",
    "Rule",
    "RuleError",
    "Type",
    "describe_fields",
    "join_rule_tables",
    "parse_rule",
]
