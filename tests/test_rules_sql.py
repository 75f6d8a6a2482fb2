"""Compiled rules on SQLite and PostgreSQL agree with the reference evaluator.

Deterministic cases pin each function and edge case to a known answer; the
property tests generate random customers and random well-typed rules and
hold the SQL to the reference evaluator, customer by customer.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, insert, select
from sqlalchemy.dialects.sqlite.base import SQLiteDialect
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import Store
from core.models import Base, Customer
from core.rules import (
    FIELD_NAMES,
    FIELDS,
    CustomerFacts,
    Rule,
    Type,
    join_rule_tables,
    parse_rule,
)
from core.rules.nodes import (
    Arithmetic,
    ArithmeticOp,
    Between,
    Call,
    CompareOp,
    Comparison,
    Constant,
    InList,
    IsNull,
    Logical,
    Name,
    Negate,
    Node,
    Not,
)
from core.rules.parser import parse
from core.rules.snapshot import RuleSnapshot
from tests.conftest import NOW

TABLES = Base.metadata.tables

# -- customers as the tests describe them, and as rows and facts ------------------------------

ROLLUP_TIMES = (
    "first_purchase_at",
    "last_purchase_at",
    "last_login_at",
    "last_open_at",
    "last_click_at",
    "last_message_at",
    "first_event_at",
    "last_event_at",
)
ROLLUP_EMPTY: dict[str, Any] = {
    **dict.fromkeys(ROLLUP_TIMES),
    "purchase_count": 0,
    "revenue_total": 0.0,
    "event_count": 0,
}
SCORES_NULLABLE = (
    "recency_score",
    "frequency_score",
    "monetary_score",
    "rfm_score",
    "engagement_score",
    "lead_score",
    "expected_purchases_90d",
    "p_alive",
    "clv_12m",
)
SCORES_ZERO = ("purchases_30d", "purchases_90d", "purchases_365d", "revenue_90d", "revenue_365d")
SCORES_MISSING: dict[str, Any] = {**dict.fromkeys(SCORES_NULLABLE), **dict.fromkeys(SCORES_ZERO, 0)}
SCORES_ROW_DEFAULTS: dict[str, Any] = {**SCORES_MISSING, "engagement_score": 0.0, "lead_score": 0.0}


@dataclass
class Person:
    """A customer with the rows that describe them; None for a table means no row there."""

    key: str
    registered_at: datetime = NOW - timedelta(days=100)
    email: str | None = None
    phone: str | None = None
    name: str | None = None
    locale: str | None = None
    time_zone: str | None = None
    birthday: date | None = None
    consent_email: bool | None = None
    consent_sms: bool | None = None
    consent_push: bool | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    rollup: dict[str, Any] | None = None
    stage: tuple[str, datetime, datetime | None] | None = None
    scores: dict[str, Any] | None = None
    events: list[tuple[str, datetime]] = field(default_factory=list)

    def customer_row(self, customer_id: int) -> dict[str, Any]:
        return {
            "id": customer_id,
            "external_id": self.key,
            "email": self.email,
            "phone": self.phone,
            "name": self.name,
            "locale": self.locale,
            "time_zone": self.time_zone,
            "birthday": self.birthday,
            "registered_at": self.registered_at,
            "attributes": self.attributes,
            "consent_email": self.consent_email,
            "consent_sms": self.consent_sms,
            "consent_push": self.consent_push,
            "created_at": NOW,
            "updated_at": NOW,
        }

    def facts(self) -> CustomerFacts:
        """What the catalogue promises a rule sees, worked out independently of the SQL."""
        rollup = {**ROLLUP_EMPTY, **(self.rollup or {})}
        scores = (
            {**SCORES_ROW_DEFAULTS, **self.scores} if self.scores is not None else SCORES_MISSING
        )
        stage, entered_at, reactivated_at = self.stage or (None, None, None)
        fields = {
            "external_id": self.key,
            "email": self.email,
            "phone": self.phone,
            "name": self.name,
            "locale": self.locale,
            "time_zone": self.time_zone,
            "birthday": self.birthday,
            "registered_at": self.registered_at,
            "consent_email": self.consent_email,
            "consent_sms": self.consent_sms,
            "consent_push": self.consent_push,
            **rollup,
            "last_active_at": rollup["last_event_at"] or self.registered_at,
            "stage": stage,
            "stage_entered_at": entered_at,
            "reactivated_at": reactivated_at,
            **scores,
        }
        assert set(fields) == set(FIELD_NAMES)
        return CustomerFacts(fields, self.attributes, self.events)


async def insert_people(session: AsyncSession, people: Sequence[Person]) -> None:
    """Insert ``people`` with ids 1..n, and their rollups, stages, scores and events."""
    rows: dict[str, list[dict[str, Any]]] = {
        "customers": [],
        "customer_rollups": [],
        "customer_stages": [],
        "customer_scores": [],
        "events": [],
    }
    dedupe_keys = itertools.count()
    for customer_id, person in enumerate(people, start=1):
        rows["customers"].append(person.customer_row(customer_id))
        if person.rollup is not None:
            rows["customer_rollups"].append(
                {"customer_id": customer_id, **ROLLUP_EMPTY, **person.rollup}
            )
        if person.stage is not None:
            stage, entered_at, reactivated_at = person.stage
            rows["customer_stages"].append(
                {
                    "customer_id": customer_id,
                    "stage": stage,
                    "entered_at": entered_at,
                    "reactivated_at": reactivated_at,
                }
            )
        if person.scores is not None:
            rows["customer_scores"].append(
                {
                    "customer_id": customer_id,
                    **SCORES_ROW_DEFAULTS,
                    **person.scores,
                    "refreshed_at": NOW,
                }
            )
        rows["events"].extend(
            {
                "customer_id": customer_id,
                "type": kind,
                "occurred_at": at,
                "source": "test",
                "dedupe_key": next(dedupe_keys),
            }
            for kind, at in person.events
        )
    for table, table_rows in rows.items():
        if table_rows:
            await session.execute(insert(TABLES[table]), table_rows)


async def selected(
    store: Store, rules: Sequence[Rule], people: Sequence[Person], now: datetime = NOW
) -> list[set[str]]:
    """The keys each rule's SQL selects among ``people``, over the catalogue tables; the same
    rules compiled over a :class:`RuleSnapshot` of them must select exactly the same.

    The rows live only inside one transaction: they are inserted, queried and
    deleted again (deleting customers cascades to every other table), so a
    store shared by many hypothesis examples stays empty between them.
    """
    keys = {customer_id: person.key for customer_id, person in enumerate(people, start=1)}
    async with store.transaction() as session:
        await insert_people(session, people)
        results = [
            {keys[i] for i in (await session.execute(rule.select_customers(now))).scalars()}
            for rule in rules
        ]
        snapshot = RuleSnapshot(rules, now, grouped_by="stage")
        assert await snapshot.build(session) == len(people)
        customer_id = snapshot.field("customer_id")
        from_snapshot = [
            {
                keys[i]
                for i in (
                    await session.execute(select(customer_id).where(snapshot.condition(rule)))
                ).scalars()
            }
            for rule in rules
        ]
        await snapshot.drop(session)
        await session.execute(delete(Customer))
    for rule, catalogue, snapshotted in zip(rules, results, from_snapshot, strict=True):
        assert snapshotted == catalogue, f"the snapshot disagrees on {rule.text}"
    return results


def expected(rule: Rule, people: Sequence[Person], now: datetime = NOW) -> set[str]:
    return {person.key for person in people if rule.evaluate(person.facts(), now)}


# -- deterministic cases ---------------------------------------------------------------------

LOGIN_BEFORE_DST = datetime(2026, 10, 24, 12, 0, tzinfo=UTC)
"""A day before Europe's clocks went back (2026-10-25): exactly 30 days before NOW."""

POPULATION = [
    Person("plain"),
    Person(
        "ana",
        email="ana@example.com",
        name="Ana",
        consent_email=True,
        consent_sms=True,
        birthday=date(2000, 11, 23),
        attributes={
            "country": "PT",
            "vip": True,
            "score": 7,
            "tier": "gold",
            "n": None,
            "c.d": 1,
            "x-y": "dash",
        },
        rollup={
            "purchase_count": 4,
            "revenue_total": 600.5,
            "first_purchase_at": NOW - timedelta(days=200),
            "last_purchase_at": NOW - timedelta(days=10),
            "last_login_at": NOW - timedelta(days=3),
            "last_event_at": NOW - timedelta(hours=2),
        },
        stage=("active", NOW - timedelta(days=30), None),
        scores={"purchases_90d": 3, "p_alive": 0.9, "rfm_score": 555, "revenue_90d": 100.25},
        events=[("cart_add", NOW - timedelta(hours=2)), ("purchase", NOW - timedelta(days=10))],
    ),
    Person(
        "bo",
        email="bo@example.org",
        name="Bo",
        consent_email=False,
        birthday=date(2026, 11, 24),
        attributes={"country": "PL", "score": "7", "vip": "yes", "tier": None},
        rollup={
            "purchase_count": 1,
            "revenue_total": 0.0,
            "last_login_at": NOW + timedelta(minutes=90),
        },
        stage=("inactive", NOW - timedelta(days=5), NOW - timedelta(days=1)),
        scores={},
        events=[
            ("cart_add", NOW + timedelta(hours=1)),
            ("login", NOW - timedelta(days=1)),
            ("purchase", NOW),
        ],
    ),
    Person(
        "emile",
        name="Émile",
        attributes={"country": "FR", "score": 2.5, "vip": False},
        rollup={"last_login_at": LOGIN_BEFORE_DST},
        events=[("login", LOGIN_BEFORE_DST)],
    ),
    Person(
        "zoe",
        name="zoe",
        attributes={"score": True},
        rollup={"last_login_at": LOGIN_BEFORE_DST + timedelta(microseconds=1)},
        scores={"purchases_90d": 5, "engagement_score": 0.25},
    ),
]
EVERYONE = {"plain", "ana", "bo", "emile", "zoe"}
ANA_AGE_IN_DAYS = (date(2026, 11, 23) - date(2000, 11, 23)).days

CASES: dict[str, list[tuple[str, set[str]]]] = {
    # three-valued logic and null handling
    "nulls": [
        ("stage == 'active'", {"ana"}),
        ("stage != 'active'", {"bo"}),
        ("stage is null", {"plain", "emile", "zoe"}),
        ("consent_email", {"ana"}),
        ("not consent_email", {"bo"}),
        ("consent_email is null", {"plain", "emile", "zoe"}),
        ("consent_email == true or consent_sms", {"ana"}),
        ("not (consent_email and stage == 'active')", {"bo"}),
        ("consent_email or true", EVERYONE),
        ("consent_email and false", set()),
        ("stage in ['active', null]", {"ana"}),
        ("stage not in ['active', null]", set()),
        ("stage not in ['active']", {"bo"}),
        ("email is null", {"plain", "emile", "zoe"}),
        ("(not consent_email) is null", {"plain", "emile", "zoe"}),
        ("(not consent_email) in [true, false]", {"ana", "bo"}),
        ("(not consent_email) == (stage == 'inactive')", {"ana", "bo"}),
    ],
    # numbers: missing rows, real division, division by zero
    "numbers": [
        ("purchase_count == 0", {"plain", "emile", "zoe"}),
        ("purchases_90d >= 3", {"ana", "zoe"}),
        ("p_alive is null", {"plain", "bo", "emile", "zoe"}),
        ("engagement_score is null", {"plain", "emile"}),
        ("engagement_score == 0", {"ana", "bo"}),
        ("revenue_total / 0 is null", EVERYONE),
        ("revenue_total / purchase_count > 150", {"ana"}),
        ("revenue_total / purchase_count is null", {"plain", "emile", "zoe"}),
        ("purchase_count / 8 == 0.5", {"ana"}),
        ("7 / 2 == 3.5", EVERYONE),
        ("revenue_total between 0.5 and 600.5", {"ana"}),
        ("revenue_total not between 0.5 and 601", {"plain", "bo", "emile", "zoe"}),
        ("-purchase_count * 2 + 10 == 2", {"ana"}),
        ("rfm_score == 555 and revenue_90d == 100.25", {"ana"}),
    ],
    # times and dates
    "times": [
        ("days_since(last_login_at) == 30", {"emile"}),
        ("days_since(last_login_at) == 29", {"zoe"}),
        ("hours_since(last_login_at) == 30 * 24", {"emile"}),
        ("hours_since(last_login_at) == 72", {"ana"}),
        ("hours_since(last_login_at) == -2", {"bo"}),
        ("days_since(last_login_at) == -1", {"bo"}),
        (f"days_since(birthday) == {ANA_AGE_IN_DAYS}", {"ana"}),
        ("days_since(birthday) == -1", {"bo"}),
        ("abs(days_since(birthday)) == 1", {"bo"}),
        ("days_since(last_active_at) == 100", {"plain", "bo", "emile", "zoe"}),
        ("last_login_at > registered_at", {"ana", "bo", "emile", "zoe"}),
        ("days_since(coalesce(last_purchase_at, registered_at)) == 10", {"ana"}),
        ("reactivated_at > stage_entered_at", {"bo"}),
    ],
    # attributes by JSON type
    "attributes": [
        ('attr("country") in ["PT", "PL"]', {"ana", "bo"}),
        ('attr("score") > 5', {"ana"}),
        ('attr("score") < 5', {"emile"}),
        ('attr("score") == "7"', {"bo"}),
        ('attr("vip")', {"ana"}),
        ('attr("vip") == false', {"emile"}),
        ('not attr("vip")', {"emile"}),
        ('attr("score") == true', {"zoe"}),
        ('attr("n") is null', EVERYONE),
        ('attr("tier") is null', {"plain", "bo", "emile", "zoe"}),
        ('attr("tier") is not null', {"ana"}),
        ('attr("c.d") == 1 and attr("x-y") == "dash"', {"ana"}),
        ('attr("country") is not null and attr("country") != "PT"', {"bo", "emile"}),
        ('coalesce(attr("country"), "none") == "none"', {"plain", "zoe"}),
    ],
    # events: the window is (now - within, now]
    "events": [
        ('has_event("cart_add")', {"ana"}),
        ('has_event("cart_add", within="1h")', set()),
        ('has_event("cart_add", within="2h")', set()),
        ('has_event("cart_add", within="3h")', {"ana"}),
        ('has_event("login", within="1d")', set()),
        ('has_event("login", within="25h")', {"bo"}),
        ('has_event("login")', {"bo", "emile"}),
        ('has_event("purchase", within="30m")', {"bo"}),
        ('has_event("purchase", "2w")', {"ana", "bo"}),
        ('not has_event("purchase")', {"plain", "emile", "zoe"}),
        ('has_event("nothing", within="52w")', set()),
    ],
    # text: code-point order, ASCII lower(), no LIKE wildcards
    "text": [
        ('name < "b"', {"ana", "bo"}),
        ('name > "Z"', {"emile", "zoe"}),
        ('name between "A" and "Z"', {"ana", "bo"}),
        ('lower(name) == "bo"', {"bo"}),
        ('lower(name) == "Émile"', {"emile"}),
        ('contains(email, "@example.")', {"ana", "bo"}),
        ('contains(name, "")', {"ana", "bo", "emile", "zoe"}),
        ('starts_with(name, "A")', {"ana"}),
        ('starts_with(name, "a")', set()),
        ('contains(name, "%") or contains(name, "_") or starts_with(name, "_")', set()),
        ('starts_with(name, "")', {"ana", "bo", "emile", "zoe"}),
    ],
}


@pytest.mark.parametrize("topic", CASES)
async def test_functions_and_edge_cases(store: Store, topic: str) -> None:
    """Each rule of a topic selects exactly the expected customers, in SQL and in Python."""
    rules = [parse_rule(text) for text, _ in CASES[topic]]
    wanted = {text: keys for text, keys in CASES[topic]}
    assert {rule.text: expected(rule, POPULATION) for rule in rules} == wanted
    results = await selected(store, rules, POPULATION)
    assert {rule.text: keys for rule, keys in zip(rules, results, strict=True)} == wanted


async def test_params_are_bound_values(store: Store) -> None:
    rule = parse_rule(
        "purchases_90d >= min_purchases and stage == wanted",
        params={"min_purchases": 3, "wanted": "active"},
    )
    assert await selected(store, [rule], POPULATION) == [{"ana"}]


async def test_text_orders_by_code_point_like_python(store: Store) -> None:
    names = ["", "a", "B", "Z", "ab", "z", "ä", "é", "É", "Ω", "日本", "😀", "a b", "ß", "ﬀ"]
    people = [Person(f"p{i}", name=name) for i, name in enumerate(names)]
    rules = {pivot: parse_rule(f'name < "{pivot}"') for pivot in ("é", "Z", "ab", "日")}
    results = await selected(store, list(rules.values()), people)
    for (pivot, rule), keys in zip(rules.items(), results, strict=True):
        assert keys == {p.key for p in people if p.name is not None and p.name < pivot}
        assert keys == expected(rule, people)


async def test_rule_values_never_become_sql(store: Store) -> None:
    payload = "x'); DROP TABLE customers; --"
    rule = parse_rule(f'name == "{payload}" or attr("a") == "\\" OR 1=1 --"')
    people = [Person("evil", name=payload), Person("other", name="x")]
    assert "DROP" not in str(rule.select_customers(NOW).compile(dialect=store.engine.dialect))
    assert await selected(store, [rule], people) == [{"evil"}]
    async with store.reading() as session:
        remaining = await session.scalar(select(func.count()).select_from(TABLES["customers"]))
    assert remaining == 0  # the table is still there, emptied by `selected` only


def test_only_the_tables_a_rule_reads_are_joined() -> None:
    def sql(text: str) -> str:
        return str(parse_rule(text).select_customers(NOW).compile(dialect=SQLiteDialect()))

    assert "JOIN" not in sql("email is null and has_event('login')")
    stage_only = sql("stage == 'new'")
    assert "customer_stages" in stage_only
    assert "customer_rollups" not in stage_only
    assert "customer_scores" not in stage_only
    assert "customer_rollups" in sql("days_since(last_active_at) > 3")


async def test_join_rule_tables_serves_other_statements(store: Store) -> None:
    rule = parse_rule("stage == 'active' and purchases_90d >= 3")
    customers = TABLES["customers"]
    statement = (
        select(customers.c.external_id)
        .select_from(join_rule_tables(customers, rule.tables))
        .where(rule.condition(NOW))
    )
    async with store.transaction() as session:
        await insert_people(session, POPULATION)
        keys = set((await session.execute(statement)).scalars())
        await session.execute(delete(Customer))
    assert keys == {"ana"}


# -- random customers and random well-typed rules ----------------------------------------------

# Small pools of values, shared by the customers and the rules' literals, so
# that comparisons often hold; each is a single draw, which keeps generating
# customers cheap (most of a property test's time went into drawing them).
TEXTS = ["", "a", "b", "B", "ab", "é", "É", "z", "Ω", "PT", "it's", 'say "hi"', "a\\b", "日本"]
NUMBERS = [0.0, 1.0, 2.0, 3.0, 0.5, 2.25, 14.0, 100.0, 500.5]
MONEY = [0.0, 0.01, 0.5, 1.0, 2.25, 3.0, 14.0, 100.0, 500.5, 600.25, 1234.56]
KEYS = ["a", "b", "c.d", "x-y"]
EVENT_TYPES = ["purchase", "cart_add", "login"]
WINDOWS = ["30m", "12h", "1d", "2d", "1w", "2w"]
STAGES = ["new", "active", "inactive", "Active", "é"]
PARAMS: dict[str, float | int | str | bool] = {"limit": 3, "label": "a", "flag": True}
PARAM_NAMES = {Type.NUMBER: "limit", Type.TEXT: "label", Type.BOOL: "flag"}
FIELDS_OF = {kind: [name for name, spec in FIELDS.items() if spec.type is kind] for kind in Type}
ORDERED = [Type.NUMBER, Type.TEXT, Type.TIME, Type.DATE]
COMPARABLE = [*ORDERED, Type.BOOL]
LISTABLE = [Type.NUMBER, Type.TEXT, Type.BOOL]

# Moments around now: exactly on every `within` window's edge and on whole
# days and hours, a microsecond either side of those, odd offsets that
# days_since/hours_since must round down, and some after now.
_OFFSETS = [
    timedelta(0),
    *(timedelta(minutes=minutes) for minutes in (-30, -12 * 60, -24 * 60, -48 * 60)),
    timedelta(weeks=-1),
    timedelta(weeks=-2),
    timedelta(days=-30),
    timedelta(days=-100),
    timedelta(minutes=-90),
    timedelta(days=-1, hours=-5, minutes=-17),
    timedelta(days=-10, hours=-3),
    timedelta(days=-41, hours=-11),
    timedelta(minutes=30),
    timedelta(minutes=90),
    timedelta(days=1, hours=2),
]
MOMENTS = [
    NOW + offset + timedelta(microseconds=jitter) for offset in _OFFSETS for jitter in (0, 1, -1)
]
# Events sit mostly right on the edges of the `within` windows and of now.
EVENT_MOMENTS = [
    NOW + edge + timedelta(microseconds=jitter)
    for edge in (
        *(timedelta(0), timedelta(minutes=-30), timedelta(hours=-12), timedelta(days=-1)),
        *(timedelta(days=-2), timedelta(weeks=-1), timedelta(weeks=-2), timedelta(minutes=30)),
    )
    for jitter in (0, 0, 1, -1)
]
BIRTHDAYS = [
    date(1950, 1, 1),
    date(2000, 2, 29),
    date(2000, 11, 23),
    NOW.date() - timedelta(days=1),
    NOW.date(),
    NOW.date() + timedelta(days=1),
    date(2030, 12, 31),
]

texts = st.sampled_from(TEXTS)
money = st.sampled_from(MONEY)
counts = st.integers(0, 5)
moments = st.sampled_from(MOMENTS)
json_values = st.none() | texts | st.integers(-3, 5) | money | st.booleans()


def optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``strategy`` or None, None a quarter of the time: often enough, not drowning the rest."""
    return st.one_of(strategy, strategy, strategy, st.none())


# Strategies are built once: hypothesis validates each new strategy object on
# first use, which would otherwise dominate the time of generating a customer.
optional_texts = optional(texts)
optional_bools = optional(st.booleans())
rollups = optional(
    st.fixed_dictionaries(
        {
            **{name: optional(moments) for name in ROLLUP_TIMES},
            "purchase_count": counts,
            "revenue_total": money,
            "event_count": counts,
        }
    )
)
quintiles = optional(st.integers(1, 5))
scores = optional(
    st.fixed_dictionaries(
        {
            "recency_score": quintiles,
            "frequency_score": quintiles,
            "monetary_score": quintiles,
            "rfm_score": optional(st.sampled_from([111, 345, 555])),
            "engagement_score": money,
            "lead_score": money,
            **dict.fromkeys(("purchases_30d", "purchases_90d", "purchases_365d"), counts),
            "revenue_90d": money,
            "revenue_365d": money,
            "expected_purchases_90d": optional(money),
            "p_alive": optional(st.sampled_from([0.0, 0.01, 0.5, 0.99, 1.0])),
            "clv_12m": optional(money),
        }
    )
)
persons = st.builds(
    Person,
    key=st.just(""),
    registered_at=moments,
    email=optional_texts,
    phone=optional_texts,
    name=optional_texts,
    locale=optional_texts,
    time_zone=optional_texts,
    birthday=optional(st.sampled_from(BIRTHDAYS)),
    consent_email=optional_bools,
    consent_sms=optional_bools,
    consent_push=optional_bools,
    attributes=st.dictionaries(st.sampled_from(KEYS), json_values),
    rollup=rollups,
    stage=optional(st.tuples(st.sampled_from(STAGES), moments, optional(moments))),
    scores=scores,
    events=st.lists(
        st.tuples(st.sampled_from(EVENT_TYPES), st.sampled_from(EVENT_MOMENTS)),
        max_size=4,
    ),
)
people = st.lists(persons, min_size=1, max_size=6).map(
    lambda population: [replace(p, key=f"c{i}") for i, p in enumerate(population)]
)


def determined(node: Node) -> bool:
    """Whether a node has a type of its own (``attr()`` and ``null`` take their context's)."""
    if isinstance(node, Constant):
        return node.value is not None
    if isinstance(node, Call) and node.name == "attr":
        return False
    if isinstance(node, Call) and node.name == "coalesce":
        return any(determined(arg) for arg in node.args)
    return True


@functools.cache
def constants(kind: Type) -> st.SearchStrategy[float | str | bool]:
    if kind is Type.NUMBER:
        return st.sampled_from(NUMBERS)
    if kind is Type.TEXT:
        return texts
    return st.booleans()


ARITHMETIC_OPS: list[ArithmeticOp] = ["+", "-", "*", "/"]
COMPOUNDS = {
    Type.NUMBER: ["negate", "arithmetic", "since", "abs", "coalesce"],
    Type.TEXT: ["lower", "coalesce"],
    Type.BOOL: [
        *("not", "logical", "compare", "compare", "in", "between", "is_null"),
        *("has_event", "has_event", "text_test", "coalesce"),
    ],
    Type.TIME: ["coalesce"],
    Type.DATE: ["coalesce"],
}


@functools.cache
def expressions(
    kind: Type, depth: int, free: bool = True, null_ok: bool = True
) -> st.SearchStrategy[Node]:
    """Parsed trees of type ``kind``, well typed by construction.

    ``free``: the node may take its type from its context (``attr()``,
    ``null``, a coalesce of those); ``null_ok``: it may be the literal null.
    Cached, so each strategy is built (and validated by hypothesis) once.
    """
    return _expressions(kind, depth, free, null_ok)


@st.composite
def _expressions(draw: st.DrawFn, kind: Type, depth: int, free: bool, null_ok: bool) -> Node:
    leaves = ["field"] if FIELDS_OF[kind] else []
    if kind in PARAM_NAMES:
        leaves += ["constant", "param"] + (["attr"] if free else [])
    if free and null_ok:
        leaves.append("null")
    # Above the bottom, a leaf is one choice among the compounds, so most
    # rules have some structure; has_event and compare come up twice as often.
    compounds = COMPOUNDS[kind] if depth > 0 else []
    choice = draw(st.sampled_from([*compounds, "leaf"] if compounds else leaves))
    if choice == "leaf":
        choice = draw(st.sampled_from(leaves))

    def sub(
        sub_kind: Type, *, sub_free: bool = True, sub_null_ok: bool = True
    ) -> st.SearchStrategy[Node]:
        return expressions(sub_kind, depth - 1, sub_free, sub_null_ok)

    match choice:
        case "field":
            return Name(draw(st.sampled_from(FIELDS_OF[kind])))
        case "constant":
            return Constant(draw(constants(kind)))
        case "param":
            return Name(PARAM_NAMES[kind])
        case "attr":
            return Call("attr", (Constant(draw(st.sampled_from(KEYS))),))
        case "null":
            return Constant(None)
        case "negate":
            return Negate(draw(sub(Type.NUMBER)))
        case "arithmetic":
            op = draw(st.sampled_from(ARITHMETIC_OPS))
            return Arithmetic(op, draw(sub(Type.NUMBER)), draw(sub(Type.NUMBER)))
        case "since":
            function = draw(st.sampled_from(["days_since", "hours_since"]))
            return Call(function, (draw(sub(draw(st.sampled_from([Type.TIME, Type.DATE])))),))
        case "abs":
            return Call("abs", (draw(sub(Type.NUMBER)),))
        case "lower":
            return Call("lower", (draw(sub(Type.TEXT)),))
        case "coalesce":
            first = draw(sub(kind))
            second = draw(sub(kind, sub_free=free or determined(first)))
            return Call("coalesce", (first, second))
        case "not":
            return Not(draw(sub(Type.BOOL)))
        case "logical":
            operands = draw(st.lists(sub(Type.BOOL), min_size=2, max_size=3))
            return Logical(draw(st.sampled_from(["and", "or"])), tuple(operands))
        case "compare":
            compared = draw(st.sampled_from(COMPARABLE))
            ops = ["==", "!="] if compared is Type.BOOL else ["==", "!=", "<", "<=", ">", ">="]
            left = draw(sub(compared, sub_null_ok=False))
            right = draw(sub(compared, sub_free=determined(left), sub_null_ok=False))
            return Comparison(draw(st.sampled_from(ops)), left, right)
        case "in":
            listed = draw(st.sampled_from(LISTABLE))
            values = draw(st.lists(constants(listed), min_size=1, max_size=3))
            if listed is Type.NUMBER:
                values = [draw(st.sampled_from([1, -1])) * value for value in values]
            items = [Constant(value) for value in values]
            if draw(st.booleans()):
                items.insert(draw(st.integers(0, len(items))), Constant(None))
            return InList(draw(sub(listed)), tuple(items), draw(st.booleans()))
        case "between":
            ordered = draw(st.sampled_from(ORDERED))
            operand = draw(sub(ordered, sub_null_ok=False))
            low = draw(sub(ordered, sub_null_ok=False))
            high = draw(
                sub(ordered, sub_free=determined(operand) or determined(low), sub_null_ok=False)
            )
            return Between(operand, low, high, draw(st.booleans()))
        case "is_null":
            return IsNull(draw(sub(draw(st.sampled_from(COMPARABLE)))), draw(st.booleans()))
        case "has_event":
            kind_arg = Constant(draw(st.sampled_from([*EVENT_TYPES, "nothing"])))
            window = draw(optional(st.sampled_from(WINDOWS)))
            if window is None:
                return Call("has_event", (kind_arg,))
            if draw(st.booleans()):
                return Call("has_event", (kind_arg,), (("within", Constant(window)),))
            return Call("has_event", (kind_arg, Constant(window)))
        case "text_test":
            function = draw(st.sampled_from(["contains", "starts_with"]))
            return Call(function, (draw(sub(Type.TEXT)), draw(sub(Type.TEXT))))
    raise AssertionError(choice)


rule_trees = st.integers(1, 4).flatmap(lambda depth: expressions(Type.BOOL, depth))

# Precedence levels of the grammar, loosest first.
_LEVEL = {"or": 1, "and": 2, "not": 3, "compare": 4, "+": 5, "-": 5, "*": 6, "/": 6, "neg": 7}
_ATOM = 8


def render(node: Node) -> str:
    """Rule text for a tree, with only the parentheses the grammar needs."""
    return _render(node, 0)


def _render(node: Node, context: int) -> str:
    text, level = _render_bare(node)
    return f"({text})" if level < context else text


def _render_bare(node: Node) -> tuple[str, int]:
    match node:
        case Constant(value=None):
            return "null", _ATOM
        case Constant(value=bool() as flag):
            return ("true" if flag else "false"), _ATOM
        case Constant(value=float() as number):
            return repr(number), _ATOM
        case Constant(value=str() as text):
            quote = "'" if '"' in text else '"'
            escaped = text.replace("\\", "\\\\").replace(quote, "\\" + quote)
            return f"{quote}{escaped}{quote}", _ATOM
        case Name():
            return node.name, _ATOM
        case Call():
            args = [render(arg) for arg in node.args]
            args += [f"{name}={render(value)}" for name, value in node.keywords]
            return f"{node.name}({', '.join(args)})", _ATOM
        case Negate():
            operand = _render(node.operand, _LEVEL["neg"])
            return "- " + operand if operand.startswith("-") else "-" + operand, _LEVEL["neg"]
        case Not():
            return "not " + _render(node.operand, _LEVEL["not"]), _LEVEL["not"]
        case Logical():
            level = _LEVEL[node.op]
            return f" {node.op} ".join(_render(o, level + 1) for o in node.operands), level
        case Arithmetic():
            level = _LEVEL[node.op]
            left, right = _render(node.left, level), _render(node.right, level + 1)
            return f"{left} {node.op} {right}", level
        case Comparison():
            left, right = _render(node.left, 5), _render(node.right, 5)
            return f"{left} {node.op} {right}", _LEVEL["compare"]
        case InList():
            items = ", ".join(render(item) for item in node.items)
            negation = "not " if node.negated else ""
            return f"{_render(node.operand, 5)} {negation}in [{items}]", _LEVEL["compare"]
        case Between():
            negation = "not " if node.negated else ""
            parts = [_render(part, 5) for part in (node.operand, node.low, node.high)]
            return f"{parts[0]} {negation}between {parts[1]} and {parts[2]}", _LEVEL["compare"]
        case IsNull():
            negation = "not " if node.negated else ""
            return f"{_render(node.operand, 5)} is {negation}null", _LEVEL["compare"]
    raise AssertionError(node)


@given(tree=rule_trees)
@settings(max_examples=500, deadline=None, derandomize=True, database=None)
def test_rendered_rules_parse_back_to_the_same_tree(tree: Node) -> None:
    text = render(tree)
    assert parse(text) == tree, text
    parse_rule(text, params=PARAMS)  # well typed by construction


async def check_sql_matches_reference(
    store: Store, population: list[Person], trees: list[Node]
) -> None:
    rules = []
    for tree in trees:
        text = render(tree)
        assert parse(text) == tree, text
        rules.append(parse_rule(text, params=PARAMS))
    results = await selected(store, rules, population)
    for rule, keys in zip(rules, results, strict=True):
        assert keys == expected(rule, population), rule.text


PROPERTY_SETTINGS = settings(
    deadline=None,
    derandomize=True,
    database=None,
    # `store` is function-scoped and so shared by every example of a test; that
    # is deliberate (a fresh database per example would take seconds each), and
    # safe because `selected` deletes every row it inserted before returning.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@given(population=people, trees=st.lists(rule_trees, min_size=1, max_size=4))
@settings(PROPERTY_SETTINGS, max_examples=300)
async def test_sql_matches_the_reference_evaluator(
    store: Store, population: list[Person], trees: list[Node]
) -> None:
    await check_sql_matches_reference(store, population, trees)


@pytest.mark.slow
@given(population=people, trees=st.lists(rule_trees, min_size=1, max_size=6))
@settings(PROPERTY_SETTINGS, max_examples=3000, derandomize=False)
async def test_sql_matches_the_reference_evaluator_long_sweep(
    store: Store, population: list[Person], trees: list[Node]
) -> None:
    await check_sql_matches_reference(store, population, trees)


# `days_since(t) < 30` compiles to a comparison of t itself; these pin that rewrite to the
# reference on every edge: whole and half bounds, both operand orders, under `not` (where a
# null must stay null), around moments a microsecond either side of whole days and hours,
# and bounds beyond the calendar, which fall back to the arithmetic.
ELAPSED_BOUNDS = [0.0, 0.5, 1.0, 1.5, 2.0, 7.0, 10.0, 10.5, 11.0, 12.0, 24.0, 29.5, 30.0, 41.0]
ELAPSED_BOUNDS += [48.0, 100.0, 168.0, 243.0, 3e6, 8e7]


@st.composite
def elapsed_comparisons(draw: st.DrawFn) -> Node:
    function = draw(st.sampled_from(["days_since", "hours_since"]))
    moment: Node = Name(draw(st.sampled_from(FIELDS_OF[Type.TIME])))
    if draw(st.booleans()):
        moment = Call("coalesce", (moment, Name(draw(st.sampled_from(FIELDS_OF[Type.TIME])))))
    call = Call(function, (moment,))
    bound: Node = Constant(draw(st.sampled_from(ELAPSED_BOUNDS)))
    if draw(st.integers(0, 4)) == 0:
        bound = Negate(bound)  # not a plain constant: left to the arithmetic
    ops: list[CompareOp] = ["==", "!=", "<", "<=", ">", ">="]
    op = draw(st.sampled_from(ops))
    tree: Node = Comparison(op, bound, call) if draw(st.booleans()) else Comparison(op, call, bound)
    return Not(tree) if draw(st.booleans()) else tree


@given(population=people, trees=st.lists(elapsed_comparisons(), min_size=1, max_size=6))
@settings(PROPERTY_SETTINGS, max_examples=150)
async def test_elapsed_comparisons_match_the_reference_evaluator(
    store: Store, population: list[Person], trees: list[Node]
) -> None:
    await check_sql_matches_reference(store, population, trees)
