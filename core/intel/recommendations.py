"""Co-purchase recommendations ("bought X, also bought Y"), computed in batch.

From the purchase events of the last year (``properties.product_id``; a
number counts by its digits), one set-based pass per step, whatever the
number of customers:

1. every distinct (customer, product) bought, and each product's buyers;
2. every pair of products bought by the same customers, at least
   ``min_shared_buyers`` of them, scored by lift: how much more often the
   two go together than chance would have it (``shared * buyers /
   (buyers of X * buyers of Y)``); the best ``per_product`` per product go
   to ``recommendations``;
3. per customer, the products they have not bought, scored by the sum of
   the lifts from what they did buy; the best ``per_customer`` go to
   ``customer_recommendations``, and the list is filled up with the most
   popular products they have not bought (scored by the share of buyers
   who bought each), so a customer who bought nothing gets the most popular.

The work happens in temporary tables with each product as a small number,
so the large joins, groupings and sorts compare integers, not text (on
PostgreSQL, text sorts by the locale's collation, several times slower).
Both tables are replaced in one transaction: readers see the old picks or
the new ones, never a mix. :func:`recommendations_for` reads the picks of a
batch of customers in one query, for the delivery worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    cast,
    delete,
    exists,
    func,
    insert,
    literal,
    select,
    true,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

from core import event_types
from core.db import Store
from core.db.dialect import (
    analyze_scratch_table,
    drop_scratch_table,
    rowcount,
    scratch_table,
    serialize_writers,
)
from core.db.sqlfunctions import CodePointOrder, JsonNumber, JsonText, Likely, RealNumber
from core.db.types import UtcDateTime
from core.models import Customer, CustomerRecommendation, Event, Recommendation

WINDOW_DAYS = 365
"""Purchases older than this do not count: tastes and catalogues change."""
PER_PRODUCT = 20
PER_CUSTOMER = 10
MIN_SHARED_BUYERS = 2
"""A pair bought together by one customer only is chance, however high its lift."""
POPULAR_POOL = 3 * PER_CUSTOMER
"""How many of the most popular products are offered to fill a customer's list."""

_PRODUCT_ID_LENGTH = 128  # the column's length in both tables

_metadata = MetaData()


def _scratch(name: str, *columns: Column[Any]) -> Table:
    return Table(name, _metadata, *columns, prefixes=["TEMPORARY"])


_purchased = _scratch(
    "rec_purchased",
    Column("customer_id", BigInteger, nullable=False),
    Column("product_id", String(_PRODUCT_ID_LENGTH), nullable=False),
)
"""Every distinct (customer, product id) bought in the window."""
_products = _scratch(
    "rec_products",
    Column("product", Integer, primary_key=True),
    Column("product_id", String(_PRODUCT_ID_LENGTH), nullable=False, unique=True),
    Column("buyers", Integer, nullable=False),
)
"""Each product bought: its number, its id and how many customers bought it."""
_bought = _scratch(
    "rec_bought",
    Column("customer_id", BigInteger, primary_key=True),
    Column("product", Integer, primary_key=True),
)
"""Every distinct (customer, product number) bought in the window."""
_together = _scratch(
    "rec_together",
    Column("one", Integer, primary_key=True),
    Column("other", Integer, primary_key=True),
    Column("customers", Integer, nullable=False),
)
"""Products bought by the same customers, each pair once (``one < other``)."""
_pairs = _scratch(
    "rec_pairs",
    Column("product", Integer, primary_key=True),
    Column("recommended", Integer, primary_key=True),
    Column("customers", Integer, nullable=False),
    Column("score", Float, nullable=False),
)
"""The best pairs of each product, with their lift."""
_picks = _scratch(
    "rec_picks",
    Column("customer_id", BigInteger, primary_key=True),
    Column("rank", Integer, primary_key=True),
    Column("product", Integer, nullable=False),
    Column("score", Float, nullable=False),
)
"""Each customer's picks, best first."""
_short = _scratch(
    "rec_short",
    Column("customer_id", BigInteger, primary_key=True),
    Column("have", Integer, nullable=False),
)
"""Customers with fewer co-purchase picks than a full list, and how many they have."""
_SCRATCH_TABLES = (_purchased, _products, _bought, _together, _pairs, _picks, _short)


@dataclass(frozen=True)
class RecommendationRefresh:
    """What a refresh computed: products bought in the window, product pairs kept, and
    customers with at least one pick."""

    products: int
    pairs: int
    customers: int


async def refresh_recommendations(
    store: Store,
    now: datetime,
    *,
    window_days: int = WINDOW_DAYS,
    per_product: int = PER_PRODUCT,
    per_customer: int = PER_CUSTOMER,
    min_shared_buyers: int = MIN_SHARED_BUYERS,
) -> RecommendationRefresh:
    """Recompute both recommendation tables from the purchases up to ``now``."""
    async with store.pinned() as connection:
        try:
            # Worked out in temporary tables under a read transaction: on SQLite other
            # writers (delivery recording what it sent) wait only for the final replace.
            async with connection.reading() as session:
                for table in _SCRATCH_TABLES:
                    await scratch_table(session, table, until="dropped")
                since = now - timedelta(days=window_days)
                buyers = await _collect_purchases(session, since, now)
                if buyers:
                    for filled in (_products, _bought):
                        await analyze_scratch_table(session, filled)
                    await _rank_pairs(session, buyers, min_shared_buyers, per_product)
                    await analyze_scratch_table(session, _pairs)
                    await _pick_co_purchases(session, per_customer)
                    await _fill_with_popular(session, buyers, per_customer)
            async with connection.transaction() as session:
                await serialize_writers(session, "recommendations")
                await session.execute(delete(CustomerRecommendation))
                await session.execute(delete(Recommendation))
                return await _store(session, now)
        finally:
            async with connection.reading() as session:
                for table in _SCRATCH_TABLES:
                    await drop_scratch_table(session, table)


async def recommendations_for(
    session: AsyncSession, customer_ids: Sequence[int], limit: int
) -> dict[int, list[dict[str, Any]]]:
    """The first ``limit`` picks of each customer, best first, as templates take them
    (``product_id``, ``score``); every id is a key, with no picks an empty list."""
    picks: dict[int, list[dict[str, Any]]] = {customer: [] for customer in customer_ids}
    if not picks or limit <= 0:
        return picks
    r = CustomerRecommendation
    rows = await session.execute(
        select(r.customer_id, r.product_id, r.score)
        .where(r.customer_id.in_(list(picks)), r.rank <= limit)
        .order_by(r.customer_id, r.rank)
    )
    for customer, product, score in rows:
        picks[customer].append({"product_id": product, "score": score})
    return picks


async def _collect_purchases(session: AsyncSession, since: datetime, now: datetime) -> int:
    """Fill the scratch tables of who bought what and each product's buyers; returns the
    number of buyers."""
    properties = Event.__table__.c.properties
    as_text = JsonText(properties, "product_id")
    as_number = cast(cast(JsonNumber(properties, "product_id"), BigInteger), String)
    distinct = (
        select(Event.customer_id, func.coalesce(as_text, as_number).label("product_id"))
        .where(
            Event.type == event_types.PURCHASE,
            # The window holds most events: read them straight through, not one by one.
            Likely(Event.occurred_at > since),
            Likely(Event.occurred_at <= now),
        )
        .distinct()
        .subquery("distinct_purchases")
    )
    # Filtered once distinct: each purchase's JSON is read for the product once, not twice.
    purchases = select(distinct.c.customer_id, distinct.c.product_id).where(
        func.length(distinct.c.product_id).between(1, _PRODUCT_ID_LENGTH)  # none is null
    )
    await session.execute(insert(_purchased).from_select(["customer_id", "product_id"], purchases))
    bought = _purchased.c
    numbered = select(
        func.row_number().over(order_by=CodePointOrder(bought.product_id)),
        bought.product_id,
        func.count(),
    ).group_by(bought.product_id)
    await session.execute(
        insert(_products).from_select(["product", "product_id", "buyers"], numbered)
    )
    products = _products.c
    await session.execute(
        insert(_bought).from_select(
            ["customer_id", "product"],
            select(bought.customer_id, products.product).join(
                _products, products.product_id == bought.product_id
            ),
        )
    )
    buyers = await session.scalar(select(func.count(func.distinct(bought.customer_id))))
    return int(buyers or 0)


async def _rank_pairs(
    session: AsyncSession, buyers: int, min_shared: int, per_product: int
) -> None:
    """The best pairs per product by lift, into ``rec_pairs``."""
    first, second = _bought.alias("first"), _bought.alias("second")
    # Each pair is counted once (x < y), then taken both ways: half the rows to group.
    counted = (
        select(first.c.product, second.c.product, func.count())
        .join(
            second,
            (second.c.customer_id == first.c.customer_id) & (second.c.product > first.c.product),
        )
        .group_by(first.c.product, second.c.product)
        .having(func.count() >= min_shared)
    )
    await session.execute(insert(_together).from_select(["one", "other", "customers"], counted))
    half = _together.c
    shared = union_all(
        select(half.one.label("product"), half.other.label("recommended"), half.customers),
        select(half.other, half.one, half.customers),
    ).subquery("shared")
    mine, theirs = _products.alias("mine"), _products.alias("theirs")
    lift = RealNumber(shared.c.customers) * buyers / (mine.c.buyers * theirs.c.buyers)
    ranked = (
        select(
            shared.c.product,
            shared.c.recommended,
            shared.c.customers,
            lift.label("score"),
            func.row_number()
            .over(
                partition_by=shared.c.product,
                # Ties go to the smaller product id: numbers follow the ids' order.
                order_by=(lift.desc(), shared.c.customers.desc(), shared.c.recommended),
            )
            .label("position"),
        )
        .join(mine, mine.c.product == shared.c.product)
        .join(theirs, theirs.c.product == shared.c.recommended)
        .subquery("ranked")
    )
    r = ranked.c
    best = select(r.product, r.recommended, r.customers, r.score).where(r.position <= per_product)
    columns = ["product", "recommended", "customers", "score"]
    await session.execute(insert(_pairs).from_select(columns, best))


async def _pick_co_purchases(session: AsyncSession, per_customer: int) -> None:
    """Per customer, the products not bought yet that go best with what they bought."""
    b, pair = _bought.c, _pairs.c
    own = _bought.alias("own")
    summed = (
        select(
            b.customer_id,
            pair.recommended.label("product"),
            func.sum(pair.score).label("score"),
        )
        .join(_pairs, pair.product == b.product)
        .group_by(b.customer_id, pair.recommended)
        .subquery("summed")
    )
    # Bought products are struck out once summed: fewer rows to look up than before.
    candidates = (
        select(summed)
        .where(
            ~exists().where(
                own.c.customer_id == summed.c.customer_id, own.c.product == summed.c.product
            )
        )
        .subquery("candidates")
    )
    await _store_ranked(session, candidates, per_customer, offset=None)


async def _fill_with_popular(session: AsyncSession, buyers: int, per_customer: int) -> None:
    """Top up every list shorter than ``per_customer`` (empty for those who bought
    nothing) with the most popular products the customer has not bought or been given."""
    picked = _picks.c
    counts = (
        select(picked.customer_id, func.count())
        .group_by(picked.customer_id)
        .having(func.count() < per_customer)
    )
    await session.execute(insert(_short).from_select(["customer_id", "have"], counts))
    nothing_yet = select(Customer.id, literal(0)).where(
        ~exists().where(picked.customer_id == Customer.id)
    )
    await session.execute(insert(_short).from_select(["customer_id", "have"], nothing_yet))

    p = _products.c
    popular = (
        select(p.product, (RealNumber(p.buyers) / buyers).label("score"))
        .order_by(p.buyers.desc(), p.product)
        .limit(POPULAR_POOL)
        .subquery("popular")
    )
    short, bought, given = _short.c, _bought.alias("bought"), _picks.alias("given")
    candidates = (
        select(short.customer_id, popular.c.product, popular.c.score, short.have)
        .select_from(_short.join(popular, true()))
        .where(
            ~exists().where(
                bought.c.customer_id == short.customer_id, bought.c.product == popular.c.product
            ),
            ~exists().where(
                given.c.customer_id == short.customer_id, given.c.product == popular.c.product
            ),
        )
        .subquery("candidates")
    )
    await _store_ranked(session, candidates, per_customer, offset=candidates.c.have)


async def _store_ranked(
    session: AsyncSession, candidates: Any, per_customer: int, *, offset: Any
) -> None:
    """Rank each customer's ``candidates`` (best score first) after the ``offset`` picks
    they already have and keep those up to ``per_customer`` in ``rec_picks``."""
    c = candidates.c
    position = func.row_number().over(
        partition_by=c.customer_id, order_by=(c.score.desc(), c.product)
    )
    rank = position if offset is None else position + offset
    ranked = select(c.customer_id, rank.label("rank"), c.product, c.score).subquery("ranked")
    r = ranked.c
    kept = select(r.customer_id, r.rank, r.product, r.score).where(r.rank <= per_customer)
    columns = ["customer_id", "rank", "product", "score"]
    await session.execute(insert(_picks).from_select(columns, kept))


async def _store(session: AsyncSession, now: datetime) -> RecommendationRefresh:
    """Write the pairs and picks out with their product ids; returns what was written."""
    pair, picked = _pairs.c, _picks.c
    mine, theirs = _products.alias("mine"), _products.alias("theirs")
    pairs = (
        select(
            mine.c.product_id,
            theirs.c.product_id,
            pair.customers,
            pair.score,
            literal(now, UtcDateTime()),
        )
        .join(mine, mine.c.product == pair.product)
        .join(theirs, theirs.c.product == pair.recommended)
    )
    columns = ["product_id", "recommended_id", "customers", "score", "computed_at"]
    stored = await session.execute(insert(Recommendation).from_select(columns, pairs))
    picks = select(picked.customer_id, picked.rank, mine.c.product_id, picked.score).join(
        mine, mine.c.product == picked.product
    )
    await session.execute(
        insert(CustomerRecommendation).from_select(
            ["customer_id", "rank", "product_id", "score"], picks
        )
    )
    products = await session.scalar(select(func.count()).select_from(_products))
    customers = await session.scalar(select(func.count(func.distinct(picked.customer_id))))
    return RecommendationRefresh(int(products or 0), rowcount(stored), int(customers or 0))
