"""Per-customer rollups: totals and "last time" columns kept current as events arrive.

Rules read :class:`~core.models.CustomerRollup` (one row per customer)
instead of aggregating events. Rollups only count events up to "now": an
event stored with a later date waits in ``pending_rollups`` and is counted
by :func:`roll_up_due_events` once the clock reaches it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, Subquery, case, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.selectable import CTE

from core import event_types
from core.db.dialect import Backend, backend_of, greatest, least, serialize_writers, upsert
from core.models import CustomerRollup, Event, PendingRollup

_ROLLUPS = CustomerRollup.__table__

# (rollup column, event type it tracks): the latest time that type occurred.
_LAST_SEEN = (
    ("last_login_at", event_types.LOGIN),
    ("last_open_at", event_types.MESSAGE_OPENED),
    ("last_click_at", event_types.MESSAGE_CLICKED),
    ("last_message_at", event_types.MESSAGE_SENT),
)


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
    statement = upsert(backend, _ROLLUPS).from_select(columns, totals)
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
        for name in columns[1:]
    }
    return statement.on_conflict_do_update(index_elements=[old.customer_id], set_=changes)


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
