"""A small, hand-built history for the KPI tests: customers moving between stages, the
messages they were sent, their purchases, opt-outs and bounces, all dated around
:data:`END` so each test can work out every KPI by hand (see :func:`build_world`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise

from sqlalchemy import insert

from core.db import Store
from core.models import CustomerStage, StageTransition, Suppression
from tests.planner_world import Person, add_campaign, add_people, campaign_spec
from tests.uplift_world import Happening, add_events, add_run

END = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
"""The end of 2026-11-22 in UTC: the moment the KPIs of the tests describe."""
DAY = date(2026, 11, 22)
"""The day that ends at :data:`END`."""


def days(n: float) -> timedelta:
    return timedelta(days=n)


async def place(store: Store, customer: int, moves: Sequence[tuple[datetime, str]]) -> None:
    """Give ``customer`` a stage history: placed in the first stage, then each move."""
    steps = [(None, *moves[0]), *((a[1], *b) for a, b in pairwise(moves))]
    async with store.transaction() as session:
        await session.execute(
            insert(StageTransition),
            [
                {"customer_id": customer, "from_stage": old, "to_stage": new, "at": at}
                for old, at, new in steps
            ],
        )
        await session.merge(
            CustomerStage(customer_id=customer, stage=moves[-1][1], entered_at=moves[-1][0])
        )


async def send(
    store: Store, campaign: int, customer: int, at: datetime, state: str = "sent"
) -> None:
    """One outbox row of ``campaign`` for ``customer``, due at ``at``; sent then if
    ``state`` is ``sent``."""
    await add_run(store, campaign, at, {customer: state})


async def happen(
    store: Store, customer: int, kind: str, at: datetime, value: float | None = None
) -> None:
    """Store one event of ``customer`` as ingest would."""
    await add_events(store, [Happening(customer, kind, at, value)], at)


async def refused(store: Store, address: str, at: datetime, source: str = "delivery") -> None:
    """An address suppressed because a server refused a message to it (source delivery)."""
    async with store.transaction() as session:
        session.add(
            Suppression(
                channel="email",
                address=address,
                reason="hard_bounce",
                source=source,
                created_at=at,
            )
        )


@dataclass(frozen=True)
class World:
    customers: dict[str, int]
    """Ids by name."""
    cycle: int
    """A cycle campaign's id."""
    launch: int
    """An ad-hoc campaign's id."""


async def build_world(store: Store) -> World:
    """The customers and history the KPI tests work out by hand.

    Window: the 30 days up to END.

    - a: registered (60 days ago), bought for 40 nine days ago and became new eight days
      ago; sent a message 20 days ago.
    - b: registered (60 days ago); sent a message 40 days ago (before the window);
      unsubscribed three days ago.
    - c: registered 5 days ago (placed inside the window); sent an ad-hoc message a day ago,
      whose report bounced.
    - d: active (100 days ago), inactive 15 days ago; bought 50 days ago.
    - e: active; bought for 100 and 50 in the last three days; sent a message two days
      ago, and has one still queued.
    - f: active; kept as control once, and a message to them failed.
    """
    ids = await add_people(store, [Person(key) for key in "abcdef"], END - days(400))
    cycle = await add_campaign(store, campaign_spec("cycle-offer", "everyone"), END)
    launch = await add_campaign(store, campaign_spec("launch", "everyone", kind="ad_hoc"), END)
    a, b, c, d, e, f = (ids[key] for key in "abcdef")
    await place(store, a, [(END - days(60), "registered"), (END - days(8), "new")])
    await place(store, b, [(END - days(60), "registered")])
    await place(store, c, [(END - days(5), "registered")])
    await place(store, d, [(END - days(100), "active"), (END - days(15), "inactive")])
    await place(store, e, [(END - days(100), "active")])
    await place(store, f, [(END - days(100), "active")])
    await send(store, cycle, a, END - days(20))
    await send(store, cycle, b, END - days(40))
    await send(store, launch, c, END - days(1))
    await send(store, cycle, e, END - days(2))
    await send(store, cycle, e, END - days(1), state="queued")
    await send(store, cycle, f, END - days(3), state="control")
    await send(store, launch, f, END - days(4), state="failed")
    await happen(store, a, "purchase", END - days(9), 40.0)
    await happen(store, d, "purchase", END - days(50), 70.0)
    await happen(store, e, "purchase", END - days(3), 100.0)
    await happen(store, e, "purchase", END - days(2), 50.0)
    await happen(store, b, "unsubscribed", END - days(3))
    await happen(store, c, "message_bounced", END - days(1))
    await happen(store, d, "message_bounced", END - days(40))
    await refused(store, "f@example.com", END - days(4))
    await refused(store, "b@example.com", END - days(3), source="one_click")
    return World(ids, cycle, launch)


async def add_later_data(store: Store, world: World) -> None:
    """What happens after END: moves, a new customer, messages, purchases, opt-outs."""
    g = (await add_people(store, [Person("g")], END + days(1)))["g"]
    b, e, f = (world.customers[key] for key in "bef")
    moment = END + timedelta(seconds=1)
    await place(store, g, [(END + days(1), "registered")])
    async with store.transaction() as session:
        await session.execute(
            insert(StageTransition),
            [
                {"customer_id": b, "from_stage": "registered", "to_stage": "new", "at": moment},
                {"customer_id": b, "from_stage": "new", "to_stage": "active", "at": END + days(2)},
                {"customer_id": f, "from_stage": "active", "to_stage": "inactive", "at": moment},
            ],
        )
        await session.merge(CustomerStage(customer_id=b, stage="active", entered_at=END))
        await session.merge(CustomerStage(customer_id=f, stage="inactive", entered_at=END))
    await send(store, world.cycle, f, moment)
    await send(store, world.launch, g, END + days(2))
    await happen(store, b, "purchase", moment, 500.0)
    await happen(store, e, "unsubscribed", END + days(1))
    await refused(store, "e@example.com", END + days(1))
