"""Who a campaign targets: its segment's members, its stage, narrowed by its extra rule.

Audiences read the materialised membership (``segment_members``) and stage
(``customer_stages``) that the refresh passes keep, so selecting an audience
is an index range read, not an evaluation of the segment's rule; only the
optional extra rule is evaluated here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, FromClause, Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import CampaignError
from core.models import CustomerStage, Segment, SegmentMember
from core.rules import Rule, join_rule_tables
from core.rules.fields import CUSTOMERS

_MEMBERS = SegmentMember.__table__
_STAGES = CustomerStage.__table__


@dataclass(frozen=True)
class Audience:
    """A campaign's target with its segment resolved to the stored segment's id."""

    stage: str | None
    segment_id: int | None
    rule: Rule | None

    def __post_init__(self) -> None:
        if self.stage is None and self.segment_id is None:
            raise ValueError("an audience needs a stage, a segment or both")

    def select_customers(self, now: datetime) -> Select[int]:
        """``SELECT customer_id`` of everyone in the audience at ``now``, each once."""
        conditions: list[ColumnElement[bool]] = []
        if self.rule is None:
            source, customer_id = self._membership(conditions)
        else:
            tables = set(self.rule.tables)
            if self.stage is not None:
                tables.add(CustomerStage.__tablename__)
            source = join_rule_tables(CUSTOMERS, tables)
            customer_id = CUSTOMERS.c.id
            if self.segment_id is not None:
                source = _MEMBERS.join(source, _MEMBERS.c.customer_id == CUSTOMERS.c.id)
                conditions.append(_MEMBERS.c.segment_id == self.segment_id)
            if self.stage is not None:
                conditions.append(_STAGES.c.stage == self.stage)
            conditions.append(self.rule.condition(now))
        return select(customer_id.label("customer_id")).select_from(source).where(*conditions)

    def _membership(
        self, conditions: list[ColumnElement[bool]]
    ) -> tuple[FromClause, ColumnElement[int]]:
        """The segment members and/or stage members, without touching ``customers``."""
        if self.segment_id is None:
            conditions.append(_STAGES.c.stage == self.stage)
            return _STAGES, _STAGES.c.customer_id
        conditions.append(_MEMBERS.c.segment_id == self.segment_id)
        if self.stage is None:
            return _MEMBERS, _MEMBERS.c.customer_id
        conditions.append(_STAGES.c.stage == self.stage)
        joined = _MEMBERS.join(_STAGES, _STAGES.c.customer_id == _MEMBERS.c.customer_id)
        return joined, _MEMBERS.c.customer_id

    async def count(self, session: AsyncSession, now: datetime) -> int:
        """How many customers the audience holds at ``now``."""
        counted = select(func.count()).select_from(self.select_customers(now).subquery())
        return int((await session.execute(counted)).scalar_one())


async def resolve_audience(
    session: AsyncSession, stage: str | None, segment: str | None, rule: Rule | None
) -> Audience:
    """The audience of a target naming ``segment``, which must be stored (applied)."""
    if segment is None:
        return Audience(stage, None, rule)
    segment_id = (
        await session.execute(
            select(Segment.id).where(Segment.name == segment, Segment.archived.is_(False))
        )
    ).scalar_one_or_none()
    if segment_id is None:
        raise CampaignError(
            f"segment `{segment}` is not in the database; add it to the program files and "
            "run `cadence program apply`, or see `cadence segments list`"
        )
    return Audience(stage, segment_id, rule)
