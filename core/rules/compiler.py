"""The rule compiler: a typed tree to one SQLAlchemy boolean expression.

Where the expression reads a customer's values from is a :class:`RuleSource`:
by default the catalogue tables (``customers`` LEFT JOIN the per-customer
tables a rule needs; see :func:`join_rule_tables`), or a
:class:`~core.rules.snapshot.RuleSnapshot` that holds them in one row per
customer. Either way the expression runs unchanged on SQLite and PostgreSQL:
dialect differences live in :mod:`core.db.sqlfunctions`. Every value a rule
mentions, and ``now``, is a bound parameter. Numbers are computed as
doubles, text orders by code point, and NULL follows SQL's three-valued
logic, exactly like :mod:`core.rules.reference`.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Collection
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Date,
    Float,
    FromClause,
    Grouping,
    String,
    and_,
    func,
    literal,
    not_,
    null,
    or_,
    select,
)
from sqlalchemy.types import TypeEngine

from core.db.sqlfunctions import (
    AsciiLower,
    CodePointOrder,
    Contains,
    DaysSince,
    HoursSince,
    JsonBool,
    JsonNumber,
    JsonPresent,
    JsonText,
    RealNumber,
    StartsWith,
)
from core.db.types import UtcDateTime
from core.rules.fields import CUSTOMERS, EVENT_FIELDS, EVENTS, FIELDS, JOINED_TABLES
from core.rules.nodes import (
    Arithmetic,
    Attr,
    Between,
    Call,
    CompareOp,
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

Sql = ColumnElement[Any]

_SQL_TYPES: dict[Type, TypeEngine[Any]] = {
    Type.NUMBER: Float(),
    Type.TEXT: String(),
    Type.BOOL: Boolean(),
    Type.TIME: UtcDateTime(),
    Type.DATE: Date(),
}
_COMPARE: dict[str, Callable[[Sql, Sql], Sql]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_UNITS = {
    "days_since": timedelta(seconds=DaysSince.unit_seconds),
    "hours_since": timedelta(seconds=HoursSince.unit_seconds),
}
"""The unit each elapsed-time function counts, as its SQL construct counts it."""
_MIRRORED: dict[CompareOp, CompareOp] = {
    "==": "==",
    "!=": "!=",
    "<": ">",
    "<=": ">=",
    ">": "<",
    ">=": "<=",
}
"""The operator that keeps a comparison true when its two sides swap places."""
_ATTRIBUTES = {
    Type.TEXT: JsonText,
    Type.NUMBER: JsonNumber,
    Type.BOOL: JsonBool,
    Type.ANY: JsonPresent,
}


class RuleSource(Protocol):
    """Where a compiled rule reads each customer's values from."""

    @property
    def customer_id(self) -> ColumnElement[int]:
        """The customer's row id."""
        ...

    def field(self, name: str, kind: Type) -> Sql:
        """The field ``name`` as rules see it (numbers as doubles, missing counts as 0)."""
        ...

    def attribute(self, key: str, kind: Type) -> Sql:
        """The free attribute ``key`` read as ``kind`` (null when missing or another type)."""
        ...

    def has_event(self, event_type: str, now: Sql, since: Sql | None) -> Sql:
        """Whether the customer has an event of ``event_type`` in ``(since, now]``: never null."""
        ...


class CatalogueSource:
    """Rules read straight from the catalogue tables (see :func:`join_rule_tables`)."""

    @property
    def customer_id(self) -> ColumnElement[int]:
        return CUSTOMERS.c.id

    def field(self, name: str, kind: Type) -> Sql:
        column = FIELDS[name].column
        return RealNumber(column) if kind is Type.NUMBER else column

    def attribute(self, key: str, kind: Type) -> Sql:
        return _ATTRIBUTES[kind](CUSTOMERS.c.attributes, key)

    def has_event(self, event_type: str, now: Sql, since: Sql | None) -> Sql:
        # Set-based: one scan of the events in the window, not a subquery per
        # customer (the events table has no per-customer index, on purpose).
        events = EVENTS.c
        conditions = [events.type == event_type, events.occurred_at <= now]
        if since is not None:
            conditions.append(events.occurred_at > since)
        return CUSTOMERS.c.id.in_(select(events.customer_id).where(*conditions))


CATALOGUE = CatalogueSource()


class EventSource:
    """A rule on one event reads the ``events`` row: :data:`EVENT_FIELDS` and, through
    ``attr()``, its properties. The checker refuses ``has_event`` in such a rule."""

    @property
    def customer_id(self) -> ColumnElement[int]:
        return EVENTS.c.customer_id

    def field(self, name: str, kind: Type) -> Sql:
        column = EVENT_FIELDS[name].column
        return RealNumber(column) if kind is Type.NUMBER else column

    def attribute(self, key: str, kind: Type) -> Sql:
        return _ATTRIBUTES[kind](EVENTS.c.properties, key)

    def has_event(self, event_type: str, now: Sql, since: Sql | None) -> Sql:
        raise TypeError("a rule on an event has no has_event (the checker refuses it)")


EVENT_SOURCE = EventSource()


def compile_condition(
    tree: Node, now: datetime, source: RuleSource = CATALOGUE
) -> ColumnElement[bool]:
    """The SQL condition of a typed rule tree over ``source``, evaluated at ``now`` (aware)."""
    condition: ColumnElement[bool] = _Compiler(now, source).sql(tree)
    return condition


def window_start(now: datetime, within: timedelta | None) -> ColumnElement[Any] | None:
    """The exclusive start of a ``has_event`` window ending at ``now`` (None: no start)."""
    return None if within is None else literal(now - within, UtcDateTime())


def join_rule_tables(from_clause: FromClause, tables: Collection[str]) -> FromClause:
    """``from_clause`` (which must include ``customers``) LEFT JOIN the tables a rule reads.

    Only the per-customer tables named in ``tables`` are joined, one row per
    customer at most, so the join never multiplies customers. Tables a rule
    reads through a subquery (``events``) need no join.
    """
    joined = from_clause
    for name, table in JOINED_TABLES.items():
        if name in tables:
            joined = joined.outerjoin(table, table.c.customer_id == CUSTOMERS.c.id)
    return joined


class _Compiler:
    def __init__(self, now: datetime, source: RuleSource) -> None:
        self.now_moment = now
        self.source = source
        # One bound parameter for "now", however often the rule mentions it.
        self.now = literal(now, UtcDateTime())

    def sql(self, node: Node) -> Sql:
        match node:
            case Constant():
                return self.constant(node)
            case Field():
                return self.source.field(node.name, _type(node))
            case Attr():
                return self.source.attribute(node.key, _type(node))
            case HasEvent():
                since = window_start(self.now_moment, node.within)
                return self.source.has_event(node.event_type, self.now, since)
            case Call():
                return self.call(node)
            case Negate():
                return -self.sql(node.operand)
            case Not():
                # Parenthesised: SQLAlchemy renders `(not x) is null` as `NOT x IS NULL`,
                # which PostgreSQL reads as `NOT (x IS NULL)`.
                return Grouping(not_(self.sql(node.operand)))
            case Logical():
                combine = and_ if node.op == "and" else or_
                return combine(*(self.sql(operand) for operand in node.operands))
            case Arithmetic():
                return self.arithmetic(node)
            case Comparison():
                bounded = self.elapsed_comparison(node)
                if bounded is not None:
                    return bounded
                left, right = self.comparable(
                    node.left, node.right, ordered=node.op not in ("==", "!=")
                )
                return _COMPARE[node.op](left, right)
            case Between():
                operand, low, high = self.comparable(
                    node.operand, node.low, node.high, ordered=True
                )
                between = operand.between(low, high)
                return not_(between) if node.negated else between
            case InList():
                operand = self.sql(node.operand)
                values = [self.sql(item) for item in node.items]
                return operand.not_in(values) if node.negated else operand.in_(values)
            case IsNull():
                operand = self.sql(node.operand)
                return operand.is_not(None) if node.negated else operand.is_(None)
        raise TypeError(f"not a typed rule node: {node!r}")

    def constant(self, node: Constant) -> Sql:
        if node.value is None and node.type is Type.ANY:
            return null()
        return literal(node.value, _SQL_TYPES[_type(node)])

    def comparable(self, *nodes: Node, ordered: bool) -> list[Sql]:
        """Operands of a comparison; text that is ordered compares by code point."""
        operands = [self.sql(node) for node in nodes]
        if ordered and nodes[0].type is Type.TEXT:
            return [CodePointOrder(operand) for operand in operands]
        return operands

    def elapsed_comparison(self, node: Comparison) -> Sql | None:
        """``days_since(t) < 30`` as ``t > now - 30 days``, when ``t`` is a time and the
        other side a number; None otherwise.

        The same answer, NULL included, from a comparison of the stored time itself,
        instead of working out whole days for every row: the elapsed count is a whole
        number ``n``, and ``n < k`` for a whole ``k`` holds exactly when less than
        ``k`` units have passed.
        """
        op, call, bound = node.op, node.left, node.right
        if isinstance(call, Constant):
            op, call, bound = _MIRRORED[op], bound, call
        if not (
            isinstance(call, Call)
            and call.name in _UNITS
            and call.args[0].type is Type.TIME
            and isinstance(bound, Constant)
            and isinstance(bound.value, float)
        ):
            return None
        value = bound.value
        try:
            # The whole bound k with: n < value ⇔ n < k, n >= value ⇔ n >= k, and so on.
            if op in ("==", "!="):
                if not value.is_integer():
                    return None
                whole = int(value)
            else:
                whole = math.ceil(value) if op in ("<", ">=") else math.floor(value) + 1
            unit = _UNITS[call.name]
            # At least k units have passed since t exactly when t <= now - k units.
            passed = literal(self.now_moment - whole * unit, UtcDateTime())
            passed_next = literal(self.now_moment - (whole + 1) * unit, UtcDateTime())
        except (OverflowError, ValueError):
            return None  # a bound beyond the calendar: leave it to the arithmetic
        moment = self.sql(call.args[0])
        if op in ("<", "<="):
            return moment > passed
        if op in (">", ">="):
            return moment <= passed
        if op == "==":
            return and_(moment <= passed, moment > passed_next)
        return or_(moment > passed, moment <= passed_next)

    def arithmetic(self, node: Arithmetic) -> Sql:
        left, right = self.sql(node.left), self.sql(node.right)
        if node.op == "+":
            return left + right
        if node.op == "-":
            return left - right
        if node.op == "*":
            return left * right
        # Division by zero is null, as a missing value would be, not an error.
        return left / func.nullif(right, literal(0.0, Float()), type_=Float())

    def call(self, node: Call) -> Sql:
        args = [self.sql(arg) for arg in node.args]
        if node.name == "days_since":
            return RealNumber(DaysSince(self.now, args[0]))
        if node.name == "hours_since":
            return RealNumber(HoursSince(self.now, args[0]))
        if node.name == "coalesce":
            return func.coalesce(*args)
        if node.name == "lower":
            return AsciiLower(*args)
        if node.name == "abs":
            return func.abs(*args, type_=Float())
        if node.name == "contains":
            return Contains(*args)
        if node.name == "starts_with":
            return StartsWith(*args)
        raise TypeError(f"no SQL for function {node.name!r}")


def _type(node: Node) -> Type:
    if node.type is None:
        raise TypeError(f"rule node was not type-checked: {node!r}")
    return node.type
