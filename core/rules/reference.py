"""The reference evaluator: the rule language in plain Python, one customer at a time.

It is the oracle the property tests hold the SQL compiler to, so it favours
being obviously right over being fast; never use it in the hot path. Unknown
is ``None``, with SQL's three-valued logic; numbers are floats (IEEE doubles,
as in the compiled SQL); text orders by code point.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from core.rules.nodes import (
    Arithmetic,
    Attr,
    Between,
    Call,
    Comparison,
    Constant,
    Field,
    HasEvent,
    InList,
    IsNull,
    Logical,
    Negate,
    Node,
    Not,
    Type,
)

FieldValue = float | int | str | bool | datetime | date | None
Value = float | str | bool | datetime | date | None


@dataclass(frozen=True)
class CustomerFacts:
    """Everything a rule can read about one customer.

    ``fields`` maps every catalogue field to its value as a rule sees it
    (counts of a missing rollup already 0, ``last_active_at`` already
    derived); times are aware UTC datetimes. ``attributes`` is the JSON
    attributes object; ``events`` the customer's (type, occurred_at) pairs.
    """

    fields: Mapping[str, FieldValue]
    attributes: Mapping[str, Any] = field(default_factory=dict)
    events: Sequence[tuple[str, datetime]] = ()


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_ARITHMETIC: dict[str, Callable[[float, float], float]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
}
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def evaluate(tree: Node, customer: CustomerFacts, now: datetime) -> Value:
    """The value of a typed rule tree for ``customer`` at ``now``; None is unknown."""
    return _Evaluator(customer, now).value(tree)


def _not(value: Value) -> bool | None:
    return None if value is None else not value


def _and(values: Sequence[Value]) -> bool | None:
    if any(v is False for v in values):
        return False
    return None if any(v is None for v in values) else True


def _or(values: Sequence[Value]) -> bool | None:
    if any(v is True for v in values):
        return True
    return None if any(v is None for v in values) else False


def _compare(op: str, left: Value, right: Value) -> bool | None:
    return None if left is None or right is None else bool(_COMPARE[op](left, right))


def _since(moment: Value, now: datetime, unit: timedelta) -> float | None:
    match moment:
        case datetime():
            start = moment
        case date():
            start = datetime.combine(moment, time(), UTC)  # a date counts from midnight UTC
        case _:
            return None
    return float((now - start) // unit)


def _attribute(value: Any, kind: Type) -> Value:
    """A JSON value read as ``kind``: None when it is of another JSON type."""
    if kind is Type.TEXT:
        return value if isinstance(value, str) else None
    if kind is Type.NUMBER:
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        return float(value) if is_number else None
    if kind is Type.BOOL:
        return value if isinstance(value, bool) else None
    # Type.ANY: only whether it is null matters; like the SQL, name the JSON type.
    return None if value is None else type(value).__name__


class _Evaluator:
    def __init__(self, customer: CustomerFacts, now: datetime) -> None:
        self.customer = customer
        self.now = now

    def value(self, node: Node) -> Value:
        match node:
            case Constant():
                return node.value
            case Field():
                value = self.customer.fields[node.name]
                return (
                    float(value)
                    if isinstance(value, int | float) and node.type is Type.NUMBER
                    else value
                )
            case Attr():
                assert node.type is not None
                return _attribute(self.customer.attributes.get(node.key), node.type)
            case HasEvent():
                return any(
                    kind == node.event_type
                    and at <= self.now
                    and (node.within is None or at > self.now - node.within)
                    for kind, at in self.customer.events
                )
            case Call():
                return self.call(node.name, [self.value(arg) for arg in node.args])
            case Negate():
                operand = self.value(node.operand)
                return -operand if isinstance(operand, float) else None
            case Not():
                return _not(self.value(node.operand))
            case Logical():
                values = [self.value(operand) for operand in node.operands]
                return _and(values) if node.op == "and" else _or(values)
            case Arithmetic():
                return self.arithmetic(node.op, self.value(node.left), self.value(node.right))
            case Comparison():
                return _compare(node.op, self.value(node.left), self.value(node.right))
            case Between():
                operand = self.value(node.operand)
                low, high = self.value(node.low), self.value(node.high)
                inside = _and([_compare(">=", operand, low), _compare("<=", operand, high)])
                return _not(inside) if node.negated else inside
            case InList():
                operand = self.value(node.operand)
                matches = _or([_compare("==", operand, self.value(item)) for item in node.items])
                return _not(matches) if node.negated else matches
            case IsNull():
                return (self.value(node.operand) is None) != node.negated
        raise TypeError(f"not a typed rule node: {node!r}")

    def arithmetic(self, op: str, left: Value, right: Value) -> float | None:
        # Numbers are floats here (fields and attributes are converted when
        # read), so anything else is null: null in, null out.
        if not (isinstance(left, float) and isinstance(right, float)):
            return None
        if op == "/":
            return None if right == 0 else left / right
        return _ARITHMETIC[op](left, right)

    def call(self, name: str, args: list[Value]) -> Value:
        if name == "coalesce":
            return args[0] if args[0] is not None else args[1]
        match name, args:
            case "days_since", [moment]:
                return _since(moment, self.now, timedelta(days=1))
            case "hours_since", [moment]:
                return _since(moment, self.now, timedelta(hours=1))
            case "lower", [str() as text]:
                return text.translate(_ASCII_LOWER)
            case "abs", [float() as number]:
                return abs(number)
            case "contains", [str() as text, str() as part]:
                return part in text
            case "starts_with", [str() as text, str() as prefix]:
                return text.startswith(prefix)
        # Every other combination has a null argument: the result is unknown.
        return None
