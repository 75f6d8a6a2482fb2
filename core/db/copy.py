"""Every row of one store copied into another, of either dialect."""

from __future__ import annotations

from sqlalchemy import func, insert, select, text

from core.db import Store
from core.models import Base


async def copy_tables(source: Store, target: Store) -> None:
    """Every table with rows in ``source`` copied into ``target``, an empty store at the
    same schema (parents first); then PostgreSQL's id sequences are moved past the
    copied ids, and the target's statistics gathered."""
    async with source.reading() as reading, target.transaction() as writing:
        for table in Base.metadata.sorted_tables:
            result = await reading.stream(select(table))
            async for batch in result.partitions(20_000):
                await writing.execute(insert(table), [row._asdict() for row in batch])
            if target.backend == "postgresql" and "id" in table.c:
                next_id = func.coalesce(func.max(table.c.id), 0) + 1
                sequence = func.pg_get_serial_sequence(table.name, "id")
                await writing.execute(select(func.setval(sequence, next_id, False)))
    async with target.transaction() as session:
        await session.execute(text("ANALYZE"))
