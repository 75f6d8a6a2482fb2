"""Rule snapshots: what a batch of rules reads, copied into one row per customer.

Refreshing hundreds of segments evaluates hundreds of rules over every
customer. Read straight from the catalogue, every evaluation joins the
per-customer tables again, parses each customer's attributes JSON again and
looks up events again. A snapshot does that work once for the whole batch:
a temporary table with one plain column per field, per attribute (with the
type a rule reads it as) and per event type the rules ask ``has_event``
about, holding the latest such event up to "now" in the widest window any
rule asks for. Each rule then reads one row per customer.

A snapshot belongs to one connection (see :meth:`core.db.Store.pinned`) and
to one moment: rules compiled with :meth:`RuleSnapshot.condition` select
exactly the customers they select over the catalogue at that moment (the
rule property tests hold both to the reference evaluator).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    FromClause,
    Identity,
    Index,
    MetaData,
    Select,
    Subquery,
    Table,
    and_,
    case,
    false,
    func,
    insert,
    literal,
    or_,
    select,
    true,
)
from sqlalchemy.ext.asyncio import AsyncSession

from core.clock import as_utc
from core.db.dialect import (
    backend_of,
    drop_scratch_table,
    rowcount,
    scratch_definition,
    scratch_table,
)
from core.db.types import BigId, UtcDateTime
from core.rules.compiler import (
    CATALOGUE,
    Sql,
    join_rule_tables,
    window_start,
)
from core.rules.fields import CUSTOMERS, EVENTS, FIELDS
from core.rules.nodes import Attr, HasEvent, Type, walk
from core.rules.rule import Rule

SNAPSHOT_TABLE = "rule_snapshot"


@dataclass(frozen=True)
class _Window:
    """An event type the rules ask about, and the widest window they ask for."""

    column: str
    within: timedelta | None
    """None: some rule asks about any time."""


class RuleSnapshot:
    """The values ``rules`` read, one row per customer, as of ``now``.

    ``fields`` adds fields no rule names but callers compare (a segment's
    ``stage``). ``carried`` is an optional subquery keyed by ``customer_id``
    whose other (integer) columns are copied in as well, 0 for customers it
    has no row for: callers keep per-customer state next to the values.

    ``grouped_by`` names a field whose equal values are stored together, in
    one range of ``position``: :meth:`in_group` then lets a scan start and
    stop at that range (a segment within one stage reads only that stage's
    customers) instead of testing every row.
    """

    def __init__(
        self,
        rules: Iterable[Rule],
        now: datetime,
        *,
        fields: Iterable[str] = (),
        carried: Subquery | None = None,
        grouped_by: str | None = None,
    ) -> None:
        self.now = as_utc(now)
        self._carried = carried
        self._grouped_by = grouped_by
        self._groups: dict[Any, tuple[int, int]] = {}
        field_names = set(fields) | ({grouped_by} if grouped_by else set())
        attributes: dict[tuple[str, Type], str] = {}
        windows: dict[str, _Window] = {}
        for rule in rules:
            field_names |= rule.fields
            for node in walk(rule.tree):
                if isinstance(node, Attr):
                    assert node.type is not None, "rules are type-checked"
                    attributes.setdefault((node.key, node.type), f"attr_{len(attributes)}")
                elif isinstance(node, HasEvent):
                    known = windows.get(node.event_type)
                    if known is None:
                        window = _Window(f"event_{len(windows)}", node.within)
                    elif known.within is None or node.within is None:
                        window = _Window(known.column, None)
                    else:
                        window = _Window(known.column, max(known.within, node.within))
                    windows[node.event_type] = window
        self._fields = sorted(field_names)
        self._attributes = attributes
        self._windows = windows
        carried_names = (
            [c.name for c in carried.c if c.name != "customer_id"] if carried is not None else []
        )
        self._carried_names = carried_names
        # Carried state first: every scan of a refresh pass reads it. Each other column has
        # the type of the catalogue expression it copies.
        columns: list[Column[Any]] = [
            Column("position", BigId, Identity(), primary_key=True),
            Column("customer_id", BigId, nullable=False),
        ]
        columns += [Column(name, BigInteger) for name in carried_names]
        columns += [Column(name, self._field_value(name).type) for name in self._fields]
        columns += [
            Column(name, CATALOGUE.attribute(key, kind).type)
            for (key, kind), name in attributes.items()
        ]
        columns += [Column(window.column, UtcDateTime()) for window in windows.values()]
        self.table = scratch_definition(SNAPSHOT_TABLE, columns)

    def condition(self, rule: Rule) -> ColumnElement[bool]:
        """``rule`` as a condition over the snapshot's table, at the snapshot's moment."""
        source = _SnapshotSource(self.table, self._attributes, self._windows)
        return rule.condition(self.now, source)

    def field(self, name: str) -> ColumnElement[Any]:
        """The snapshot's column for a field it was asked for."""
        return self.table.c[name]

    @property
    def grouped(self) -> bool:
        return self._grouped_by is not None

    def in_group(self, value: Any) -> ColumnElement[bool]:
        """Where the rows whose ``grouped_by`` field holds ``value`` are: a range of positions
        (every row when the snapshot is not grouped). Callers still compare the field itself.
        """
        if self._grouped_by is None:
            return true()
        if value not in self._groups:
            return false()
        first, last = self._groups[value]
        return self.table.c.position.between(first, last)

    async def build(self, session: AsyncSession) -> int:
        """Create and fill the table on ``session``'s connection; returns the customers copied.

        The table outlives the transaction; :meth:`drop` removes it.
        """
        await scratch_table(session, self.table, until="dropped")
        source: FromClause = join_rule_tables(
            CUSTOMERS, set().union(*(FIELDS[name].tables for name in self._fields))
        )
        values: list[Sql] = [self._field_value(name) for name in self._fields]
        values += [CATALOGUE.attribute(key, kind) for key, kind in self._attributes]
        if self._windows:
            latest = self._latest_events()
            source = source.outerjoin(latest, latest.c.customer_id == CUSTOMERS.c.id)
            values += [latest.c[window.column] for window in self._windows.values()]
        if self._carried is not None:
            carried = self._carried
            source = source.outerjoin(carried, carried.c.customer_id == CUSTOMERS.c.id)
            values = [
                *(func.coalesce(carried.c[name], 0) for name in self._carried_names),
                *values,
            ]
        columns = [column.name for column in self.table.c]
        rows = select(CUSTOMERS.c.id, CUSTOMERS.c.id, *values).select_from(source)
        if self._grouped_by is None:
            result = await session.execute(insert(self.table).from_select(columns, rows))
        else:
            result = await self._fill_grouped(session, columns, rows)
        if backend_of(session) == "postgresql":
            # Autovacuum never analyses temporary tables; the planner needs the statistics.
            connection = await session.connection()
            await connection.exec_driver_sql(f"ANALYZE {SNAPSHOT_TABLE}")
        if self._grouped_by is not None:
            grouped, position = self.table.c[self._grouped_by], self.table.c.position
            self._groups = {
                value: (first, last)
                for value, first, last in await session.execute(
                    select(grouped, func.min(position), func.max(position)).group_by(grouped)
                )
            }
        return rowcount(result)

    async def _fill_grouped(
        self, session: AsyncSession, columns: list[str], rows: Select[Any]
    ) -> Any:
        """Fill the table in ``grouped_by`` order, positions numbered in that order.

        Sorting the wide rows would cost more than all the copying: they go into a
        staging table first, and an index on the grouped field (narrow, cheap to
        sort) then hands them over in order.
        """
        grouped = self._grouped_by
        assert grouped is not None
        staging = Table(
            f"{SNAPSHOT_TABLE}_staging",
            MetaData(),
            Column("position", BigId, primary_key=True),  # the customer id, here
            *(column._copy() for column in self.table.c if column.name != "position"),
            prefixes=["TEMPORARY"],
        )
        await scratch_table(session, staging)
        await session.execute(insert(staging).from_select(columns, rows))
        connection = await session.connection()
        await connection.run_sync(
            lambda sync: Index(None, staging.c[grouped], staging.c.position).create(sync)
        )
        copied = columns[1:]  # all but the position, which the table numbers
        result = await session.execute(
            insert(self.table).from_select(
                copied,
                select(*(staging.c[name] for name in copied)).order_by(
                    staging.c[grouped], staging.c.position
                ),
            )
        )
        await drop_scratch_table(session, staging)
        return result

    async def drop(self, session: AsyncSession) -> None:
        await drop_scratch_table(session, self.table)

    @staticmethod
    def _field_value(name: str) -> Sql:
        return CATALOGUE.field(name, FIELDS[name].type)

    def _latest_events(self) -> Subquery:
        """Per customer, the latest event up to now of each type the rules ask about."""
        events = EVENTS.c
        now = literal(self.now, UtcDateTime())
        wanted = []
        for event_type, window in self._windows.items():
            since = window_start(self.now, window.within)
            wanted.append(
                events.type == event_type
                if since is None
                else and_(events.type == event_type, events.occurred_at > since)
            )
        conditions = [events.occurred_at <= now, or_(*wanted)]
        if all(window.within is not None for window in self._windows.values()):
            # One range the time index can serve, whatever the types.
            widest = max(w.within for w in self._windows.values() if w.within is not None)
            since = window_start(self.now, widest)
            assert since is not None
            conditions.append(events.occurred_at > since)
        return (
            select(
                events.customer_id,
                *(
                    func.max(case((events.type == event_type, events.occurred_at))).label(
                        window.column
                    )
                    for event_type, window in self._windows.items()
                ),
            )
            .where(*conditions)
            .group_by(events.customer_id)
            .subquery("latest_events")
        )


class _SnapshotSource:
    """A :class:`~core.rules.compiler.RuleSource` over a snapshot's columns."""

    def __init__(
        self,
        table: Table,
        attributes: dict[tuple[str, Type], str],
        windows: dict[str, _Window],
    ) -> None:
        self._columns = table.c
        self._attributes = attributes
        self._windows = windows

    @property
    def customer_id(self) -> ColumnElement[int]:
        return self._columns.customer_id

    def field(self, name: str, kind: Type) -> Sql:
        return self._columns[name]

    def attribute(self, key: str, kind: Type) -> Sql:
        return self._columns[self._attributes[(key, kind)]]

    def has_event(self, event_type: str, now: Sql, since: Sql | None) -> Sql:
        # The column holds the latest such event up to now within the widest window
        # asked for, so an event lies in (since, now] exactly when that one does.
        latest = self._columns[self._windows[event_type].column]
        if since is None:
            return latest.is_not(None)
        return and_(latest.is_not(None), latest > since)
