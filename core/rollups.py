"""Per-customer rollups: totals and "last time" columns kept current as events arrive.

Rules read :class:`~core.models.CustomerRollup` (one row per customer)
instead of aggregating events. Rollups only count events up to "now": an
event stored with a later date waits in ``pending_rollups`` and is counted
by :func:`roll_up_due_events` once the clock reaches it.

Events are folded in either by SQL over stored events (:func:`rollup_upsert`)
or, when a bulk writer knows exactly which rows it stored, from totals
worked out in Python (:func:`rollup_totals`, :func:`totals_upsert`); both
merge into a customer's row the same way.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from itertools import compress, repeat
from operator import eq, le
from typing import Any

from sqlalchemy import Select, Subquery, bindparam, case, delete, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.selectable import CTE

from core import event_types
from core.db.dialect import Backend, backend_of, greatest, least, serialize_writers, upsert
from core.models import Customer, CustomerRollup, Event, PendingRollup

_ROLLUPS = CustomerRollup.__table__

# (rollup column, event type it tracks): the latest time that type occurred.
_LAST_SEEN = (
    ("last_login_at", event_types.LOGIN),
    ("last_open_at", event_types.MESSAGE_OPENED),
    ("last_click_at", event_types.MESSAGE_CLICKED),
    ("last_message_at", event_types.MESSAGE_SENT),
)
TOTALS_COLUMNS = (
    "customer_id",
    "first_purchase_at",
    "last_purchase_at",
    "purchase_count",
    "revenue_total",
    *(column for column, _ in _LAST_SEEN),
    "first_event_at",
    "last_event_at",
    "event_count",
)
"""A customer's totals over some events, in the order both upserts use."""


def rollup_upsert(backend: Backend, source: Subquery | CTE, now: datetime) -> Any:
    """Fold the events in ``source`` (customer_id, type, occurred_at, value) into the rollups.

    One INSERT ... SELECT ... GROUP BY ... ON CONFLICT statement, whatever the
    number of customers; events after ``now`` are left out.
    """
    s = source.c
    purchase = s.type == event_types.PURCHASE
    totals: Select[Any] = (
        select(
            s.customer_id,
            func.min(case((purchase, s.occurred_at))).label("first_purchase_at"),
            func.max(case((purchase, s.occurred_at))).label("last_purchase_at"),
            func.sum(case((purchase, 1), else_=0)).label("purchase_count"),
            func.coalesce(func.sum(case((purchase, s.value))), 0).label("revenue_total"),
            *(
                func.max(case((s.type == kind, s.occurred_at))).label(column)
                for column, kind in _LAST_SEEN
            ),
            func.min(s.occurred_at).label("first_event_at"),
            func.max(s.occurred_at).label("last_event_at"),
            func.count().label("event_count"),
        )
        .where(s.occurred_at <= now)
        .group_by(s.customer_id)
    )
    columns = [c.name for c in totals.selected_columns]
    assert tuple(columns) == TOTALS_COLUMNS
    return _merged(backend, upsert(backend, _ROLLUPS).from_select(columns, totals))


def totals_upsert(backend: Backend) -> Any:
    """Fold rows of :func:`rollup_totals` (one per customer) into the rollups, like
    :func:`rollup_upsert` does; executed with one parameter set per row."""
    parameters: dict[str, Any] = {name: bindparam(name) for name in TOTALS_COLUMNS}
    return _merged(backend, upsert(backend, _ROLLUPS).values(parameters))


def rollup_totals(
    customers: Sequence[int],
    kinds: Sequence[str],
    times: Sequence[int],
    values: Sequence[float | None],
) -> list[tuple[Any, ...]]:
    """Per-customer totals (:data:`TOTALS_COLUMNS`) of the events given as columns,
    times as integers (SQLite's epoch microseconds), all of them up to "now".

    The same numbers the SQL of :func:`rollup_upsert` computes, in C-level loops
    over the columns but for the amounts, which are summed in row order.
    """
    counts = Counter(customers)
    first_event, last_event = _earliest_and_latest(customers, times)
    purchase = list(map(eq, kinds, repeat(event_types.PURCHASE)))
    buyers = list(compress(customers, purchase))
    first_purchase, last_purchase = _earliest_and_latest(buyers, list(compress(times, purchase)))
    purchases = Counter(buyers)
    revenue: dict[int, float] = {}
    for customer, amount in zip(buyers, compress(values, purchase), strict=True):
        if amount is not None:
            revenue[customer] = revenue.get(customer, 0) + amount
    last_seen: list[dict[int, int]] = []
    present = set(kinds)
    for _, kind in _LAST_SEEN:
        if kind not in present:  # most batches lack some of them: skip their passes
            last_seen.append({})
            continue
        chosen = list(map(eq, kinds, repeat(kind)))
        _, latest = _earliest_and_latest(
            list(compress(customers, chosen)), list(compress(times, chosen))
        )
        last_seen.append(latest)
    ids = list(counts)
    return list(
        zip(
            ids,
            map(first_purchase.get, ids),
            map(last_purchase.get, ids),
            map(purchases.__getitem__, ids),
            map(revenue.get, ids, repeat(0)),
            *(map(latest.get, ids) for latest in last_seen),
            map(first_event.__getitem__, ids),
            map(last_event.__getitem__, ids),
            map(counts.__getitem__, ids),
            strict=False,  # the maps end with ids
        )
    )


def _earliest_and_latest(
    customers: Sequence[int], times: Sequence[int]
) -> tuple[dict[int, int], dict[int, int]]:
    """Each customer's earliest and latest time: a dict keeps the last value it is given,
    so times in order (the common case, checked) need no sort."""
    pairs: Sequence[tuple[int, int]] = list(zip(customers, times, strict=True))
    if not all(map(le, times, times[1:])):
        pairs = sorted(pairs)
    return dict(reversed(pairs)), dict(pairs)


def _merged(backend: Backend, statement: Any) -> Any:
    """``statement`` inserting totals, made to merge them into an existing rollup row."""
    old, new = _ROLLUPS.c, statement.excluded
    earliest = ("first_purchase_at", "first_event_at")
    summed = ("purchase_count", "revenue_total", "event_count")
    changes = {
        name: (
            least(backend, old[name], new[name])
            if name in earliest
            else old[name] + new[name]
            if name in summed
            else greatest(backend, old[name], new[name])
        )
        for name in TOTALS_COLUMNS[1:]
    }
    return statement.on_conflict_do_update(index_elements=[old.customer_id], set_=changes)


async def note_messages_sent(
    session: AsyncSession, customer_ids: Sequence[int], at: datetime
) -> None:
    """Move the customers' ``last_message_at`` to ``at``: a message just reached them.

    Delivery records sends in the outbox, not as events, so it folds them into the
    rollups itself, the same way an ingested ``message_sent`` event would be. A customer
    erased since their message went out is left out: they have no row to fold it into.
    """
    if not customer_ids:
        return
    # One statement for the whole batch, parameters and all: row by row, the upsert of
    # every totals column cost a fifth of delivery's time outside SMTP. The key-share
    # lock keeps the customers from being erased until this commits (PostgreSQL; on
    # SQLite this transaction is the only writer).
    backend = backend_of(session)
    present = (
        select(Customer.id, literal(at, _ROLLUPS.c.last_message_at.type))
        .where(Customer.id.in_(sorted(set(customer_ids))))
        .order_by(Customer.id)
        .with_for_update(key_share=True)
    )
    # Merged like any other totals: the columns not given insert as their defaults
    # (no time, no count), which leave an existing row as it is.
    insert = upsert(backend, _ROLLUPS).from_select(["customer_id", "last_message_at"], present)
    statement = _merged(backend, insert)
    await session.execute(statement)


async def roll_up_due_events(session: AsyncSession, now: datetime) -> int:
    """Count the held-back events whose time has come; returns how many were counted."""
    await serialize_writers(session, "rollups")
    due = (
        select(Event.customer_id, Event.type, Event.occurred_at, Event.value)
        .join(PendingRollup, PendingRollup.event_id == Event.id)
        .where(PendingRollup.occurred_at <= now)
    )
    count = (await session.execute(select(func.count()).select_from(due.subquery()))).scalar_one()
    if count:
        await session.execute(rollup_upsert(backend_of(session), due.subquery(), now))
        await session.execute(delete(PendingRollup).where(PendingRollup.occurred_at <= now))
    return int(count)
