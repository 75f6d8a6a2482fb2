"""SQL constructs that SQLite and PostgreSQL spell differently.

The rule compiler (:mod:`core.rules.compiler`) builds its expressions from
these and stays free of dialect checks; each construct renders itself per
dialect with ``@compiles``. Times are integer epoch microseconds on SQLite
and naive UTC ``timestamp`` on PostgreSQL (see :class:`core.db.types.UtcDateTime`);
JSON documents are text on SQLite and ``jsonb`` on PostgreSQL.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from sqlalchemy import BigInteger, Boolean, ColumnElement, Date, Dialect, Float, String, literal
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator

_MICROS_PER_DAY = 86_400_000_000
_UNIX_EPOCH_JULIAN_DAY = 2440587.5


def _args(element: FunctionElement[Any], compiler: SQLCompiler, **kw: Any) -> list[str]:
    return [compiler.process(clause, **kw) for clause in element.clauses.clauses]


def _render_per_dialect(
    construct: type[FunctionElement[Any]], *, sqlite: str, postgresql: str
) -> None:
    """Render ``construct`` from a template per dialect; ``{0}``, ``{1}`` are its arguments."""
    for dialect, template in (("sqlite", sqlite), ("postgresql", postgresql)):

        def render(
            element: FunctionElement[Any],
            compiler: SQLCompiler,
            template: str = template,
            **kw: Any,
        ) -> str:
            return template.format(*_args(element, compiler, **kw))

        compiles(construct, dialect)(render)


class RealNumber(FunctionElement[float]):
    """A number as a double-precision float.

    Rules compute with IEEE doubles everywhere, so ``+ - * /`` give the same
    result on both databases and in Python: no integer division (both
    databases divide int by int as integers), no exact ``numeric`` sums on
    PostgreSQL, no integer overflow errors.
    """

    name = "real_number"
    type = Float()
    inherit_cache = True


_render_per_dialect(
    RealNumber, sqlite="CAST({0} AS REAL)", postgresql="CAST({0} AS DOUBLE PRECISION)"
)


class _Elapsed(FunctionElement[int]):
    """Whole units from a moment to ``now``, rounded down (negative for future moments).

    Arguments: ``now`` and the moment, a time or a DATE (which counts from
    its midnight UTC). Null when the moment is null.
    """

    unit_seconds: ClassVar[int]
    type = BigInteger()
    inherit_cache = True

    def __init__(self, now: ColumnElement[Any], moment: ColumnElement[Any]) -> None:
        super().__init__(now, moment)

    @property
    def counts_from_date(self) -> bool:
        return isinstance(self.clauses.clauses[1].type, Date)


class DaysSince(_Elapsed):
    """``days_since``: whole days from a moment to now."""

    name = "days_since"
    unit_seconds = 86_400
    inherit_cache = True


class HoursSince(_Elapsed):
    """``hours_since``: whole hours from a moment to now."""

    name = "hours_since"
    unit_seconds = 3_600
    inherit_cache = True


@compiles(_Elapsed, "sqlite")
def _elapsed_sqlite(element: _Elapsed, compiler: SQLCompiler, **kw: Any) -> str:
    # Exact integer arithmetic on microseconds. SQLite's `/` truncates towards
    # zero and `%` keeps the dividend's sign, so subtract the non-negative
    # remainder first to round down for moments after now too.
    now, moment = _args(element, compiler, **kw)
    if element.counts_from_date:
        # A DATE is ISO text; julianday() of a date is exactly n + 0.5.
        moment = (
            f"(CAST(julianday({moment}) - {_UNIX_EPOCH_JULIAN_DAY} AS INTEGER) * {_MICROS_PER_DAY})"
        )
    unit = element.unit_seconds * 1_000_000
    elapsed = f"({now} - {moment})"
    return f"(({elapsed} - ((({elapsed} % {unit}) + {unit}) % {unit})) / {unit})"


@compiles(_Elapsed, "postgresql")
def _elapsed_postgresql(element: _Elapsed, compiler: SQLCompiler, **kw: Any) -> str:
    # extract() returns an exact numeric (PostgreSQL 14+), so floor() is exact too.
    now, moment = _args(element, compiler, **kw)
    if element.counts_from_date:
        moment = f"CAST({moment} AS TIMESTAMP WITHOUT TIME ZONE)"
    return f"floor(extract(epoch from ({now} - {moment})) / {element.unit_seconds})"


class JsonKey(TypeDecorator[str]):
    """A key of a JSON object, bound as SQLite's JSON path or as PostgreSQL's key.

    The key travels as a bound value, never inside the SQL text; callers
    allow only keys without quotes or backslashes, so the quoted path
    ``$."key"`` is exactly that key (dots and dashes included).
    """

    impl = String()
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None or dialect.name != "sqlite":
            return value
        return f'$."{value}"'


AttributeKind = Literal["text", "number", "bool", "any"]


class JsonAttribute(FunctionElement[Any]):
    """A value of a JSON object column, read as one JSON type.

    The value is null when the key is missing or holds another JSON type
    (booleans are not numbers). Kind ``any`` reads no value: it is null
    exactly when the key is missing or JSON null, for ``attr(x) is null``.
    """

    name = "json_attribute"
    kind: ClassVar[AttributeKind]
    inherit_cache = True

    def __init__(self, document: ColumnElement[Any], key: str) -> None:
        super().__init__(document, literal(key, JsonKey()))


class JsonText(JsonAttribute):
    kind = "text"
    type = String()
    inherit_cache = True


class JsonNumber(JsonAttribute):
    kind = "number"
    type = Float()
    inherit_cache = True


class JsonBool(JsonAttribute):
    kind = "bool"
    type = Boolean()
    inherit_cache = True


class JsonPresent(JsonAttribute):
    kind = "any"
    type = String()
    inherit_cache = True


@compiles(JsonAttribute, "sqlite")
def _attribute_sqlite(element: JsonAttribute, compiler: SQLCompiler, **kw: Any) -> str:
    document, path = _args(element, compiler, **kw)
    json_type = f"json_type({document}, {path})"
    value = f"json_extract({document}, {path})"
    return {
        "text": f"CASE WHEN {json_type} = 'text' THEN {value} END",
        "number": f"CASE WHEN {json_type} IN ('integer', 'real') THEN CAST({value} AS REAL) END",
        "bool": f"CASE {json_type} WHEN 'true' THEN 1 WHEN 'false' THEN 0 END",
        "any": f"NULLIF({json_type}, 'null')",
    }[element.kind]


@compiles(JsonAttribute, "postgresql")
def _attribute_postgresql(element: JsonAttribute, compiler: SQLCompiler, **kw: Any) -> str:
    document, key = _args(element, compiler, **kw)
    json_type = f"jsonb_typeof({document} -> {key})"
    value = f"({document} ->> {key})"
    return {
        "text": f"CASE WHEN {json_type} = 'string' THEN {value} END",
        "number": (f"CASE WHEN {json_type} = 'number' THEN CAST({value} AS DOUBLE PRECISION) END"),
        "bool": f"CASE WHEN {json_type} = 'boolean' THEN CAST({value} AS BOOLEAN) END",
        "any": f"NULLIF({json_type}, 'null')",
    }[element.kind]


class CodePointOrder(FunctionElement[str]):
    """Text that compares in Unicode code-point order, like Python's ``str``.

    SQLite's default BINARY collation already compares UTF-8 bytes, which is
    code-point order; PostgreSQL needs ``COLLATE "C"`` instead of the
    database's locale order. Use it for ``<``-style comparisons only:
    equality is the same in every deterministic collation, and the plain
    column keeps its indexes usable.
    """

    name = "code_point_order"
    type = String()
    inherit_cache = True


# Parenthesised: PostgreSQL's grammar takes no COLLATE in BETWEEN's bounds.
_render_per_dialect(
    CodePointOrder, sqlite="(({0}) COLLATE BINARY)", postgresql='(({0}) COLLATE "C")'
)


class AsciiLower(FunctionElement[str]):
    """Text with A-Z in lower case and every other character unchanged.

    That is what SQLite's ``lower()`` does; PostgreSQL's would follow the
    locale, so it runs under the "C" collation to do the same.
    """

    name = "ascii_lower"
    type = String()
    inherit_cache = True


_render_per_dialect(AsciiLower, sqlite="lower({0})", postgresql='lower(({0}) COLLATE "C")')


class Contains(FunctionElement[bool]):
    """Whether the second text occurs in the first, case-sensitively (no LIKE wildcards)."""

    name = "contains_text"
    type = Boolean()
    inherit_cache = True


_render_per_dialect(Contains, sqlite="(instr({0}, {1}) > 0)", postgresql="(strpos({0}, {1}) > 0)")


class StartsWith(FunctionElement[bool]):
    """Whether the first text begins with the second, case-sensitively."""

    name = "starts_with_text"
    type = Boolean()
    inherit_cache = True


_render_per_dialect(
    StartsWith, sqlite="(substr({0}, 1, length({1})) = {1})", postgresql="starts_with({0}, {1})"
)


class Likely(FunctionElement[bool]):
    """A condition most rows meet, such as a time window that covers most events.

    Without statistics SQLite's planner would look every matching row up
    through an index on the condition's column, one at a time; told the
    condition is likely, it reads the table straight through (measured on
    the demo's events: 1.4 s down to 0.2 s). PostgreSQL's statistics already
    know, so there the condition stays as it is.
    """

    name = "likely_condition"
    type = Boolean()
    inherit_cache = True


_render_per_dialect(Likely, sqlite="likely({0})", postgresql="({0})")


class Unindexed(FunctionElement[Any]):
    """A column whose conditions the planner must not pick an index by, such as the event
    type of a statement that reads a short time window of events.

    Without statistics SQLite's planner takes an equality over a range: it reads every
    purchase ever stored through the type index rather than the window's few events
    through the time index (a journey tick's goal read, 20,000 customers: 8 ms down to
    0.1 ms). SQLite's unary ``+`` keeps the value and stops the index use; PostgreSQL's
    statistics already know, so there the column stays as it is.
    """

    name = "unindexed"
    inherit_cache = True

    def __init__(self, column: ColumnElement[Any]) -> None:
        super().__init__(column)
        self.type = column.type


_render_per_dialect(Unindexed, sqlite="+{0}", postgresql="{0}")
