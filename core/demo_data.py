"""Deterministic demo data: customers with believable, varied behaviour.

Each customer follows a *persona* (browser, newcomer, regular, high roller,
lapsed, returner) that decides when they registered, when they were active
and how often they log in, browse, add to cart, buy, win and lose. The mix
populates every lifecycle stage of the default program: registered without
a purchase, new (first purchase within 90 days), active, inactive and
reactivated. The same seed, size and "now" always give the same rows.

Customers go through the ordinary customer import. Events are made typed (times
in epoch microseconds, properties as stored JSON) and go through the event
importer's write stage, so demo data gets the same idempotency and rollups as a
real import without writing a million values out as text to parse them back.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from operator import itemgetter
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from core import clock
from core.db import Store
from core.errors import CadenceError
from core.ingest.customers import CustomerImporter
from core.ingest.events import EventImporter, ParsedEvent, properties_document
from core.ingest.report import ImportReport, RejectsFile
from core.ingest.runner import CHUNK_ROWS, Batch, Chunk, Importer, parse_chunks, run_import
from core.ingest.source import Row
from core.settings import Settings

SOURCE = "demo"

_MARKETS = (
    # locale, time zone, phone prefix, country, first names, last names
    (
        "pt-PT",
        "Europe/Lisbon",
        "+3519",
        "PT",
        ("Ana", "João", "Maria", "Pedro", "Inês", "Tiago", "Rita", "Miguel", "Sofia", "Rui"),
        ("Silva", "Santos", "Ferreira", "Pereira", "Oliveira", "Costa", "Rodrigues", "Martins"),
    ),
    (
        "pl-PL",
        "Europe/Warsaw",
        "+485",
        "PL",
        ("Anna", "Piotr", "Katarzyna", "Tomasz", "Magdalena", "Paweł", "Agnieszka", "Michał"),
        ("Nowak", "Kowalski", "Wiśniewski", "Wójcik", "Kamiński", "Lewandowski", "Zieliński"),
    ),
    (
        "it-IT",
        "Europe/Rome",
        "+393",
        "IT",
        ("Giulia", "Marco", "Francesca", "Luca", "Chiara", "Alessandro", "Sara", "Matteo"),
        ("Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci"),
    ),
    (
        "en-GB",
        "Europe/London",
        "+447",
        "GB",
        ("Emma", "Oliver", "Amelia", "George", "Isla", "Harry", "Ava", "Jack", "Mia", "Noah"),
        ("Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Evans", "Thomas"),
    ),
)
_MARKET_WEIGHTS = (3, 3, 2, 2)
TIME_ZONES = tuple(market[1] for market in _MARKETS)
"""The time zones demo customers live in."""

_CATEGORIES = {
    # category: (number of products, typical price)
    "slots": (18, 20.0),
    "live-casino": (10, 45.0),
    "sports": (12, 30.0),
    "poker": (8, 60.0),
    "lottery": (6, 10.0),
}
_PRODUCTS = {
    category: [f"{category}-{n:03d}" for n in range(1, count + 1)]
    for category, (count, _) in _CATEGORIES.items()
}
_PAGES = ("/promotions", "/vip", "/features/cash-out", "/features/live-stream", "/help", "/bonus")
_CHANNELS = ("organic", "paid-search", "affiliate", "social", "referral")


@dataclass(frozen=True)
class Persona:
    """How a kind of customer behaves over time."""

    name: str
    weight: int
    buys: bool
    logins_per_week: float
    purchases_per_month: float
    spend: float
    """Multiplier on the category's typical price."""


PERSONAS = (
    Persona("browser", 20, False, 1.0, 0.0, 1.0),
    Persona("newcomer", 14, True, 2.5, 2.0, 1.0),
    Persona("regular", 30, True, 3.0, 3.0, 1.0),
    Persona("high-roller", 6, True, 5.0, 8.0, 4.0),
    Persona("lapsed", 20, True, 2.0, 2.0, 1.0),
    Persona("returner", 10, True, 2.5, 2.5, 1.2),
)


DemoEvent = tuple[str, int, float | None, str]
"""An event's type, time (epoch microseconds, UTC), value and properties JSON."""

_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class Customer:
    external_id: str
    profile: dict[str, Any]
    events: list[DemoEvent]
    """In time order."""


def generate(customers: int, days: int, seed: int, now: datetime) -> Iterator[Customer]:
    """Yield ``customers`` demo customers with their events over ``days`` days up to ``now``."""
    rng = random.Random(seed)
    start = now - timedelta(days=days)
    for number in range(1, customers + 1):
        yield _customer(rng, number, start, now)


class _Calendar:
    """Random moments for one customer, at plausible local hours, never after now."""

    _HOURS = (8, 12, 13, 18, 19, 20, 21, 21, 22, 23)

    def __init__(self, rng: random.Random, zone: ZoneInfo, now: datetime) -> None:
        self.rng = rng
        self.zone = zone
        self.now = now

    def between(self, low: datetime, high: datetime) -> datetime:
        day = low + (high - low) * self.rng.random()
        local = day.astimezone(self.zone).replace(
            hour=self.rng.choice(self._HOURS),
            minute=self.rng.randrange(60),
            second=self.rng.randrange(60),
        )
        return min(local.astimezone(UTC), self.now)


def _customer(rng: random.Random, number: int, start: datetime, now: datetime) -> Customer:
    persona = rng.choices(PERSONAS, weights=[p.weight for p in PERSONAS])[0]
    locale, zone_name, prefix, country, firsts, lasts = rng.choices(
        _MARKETS, weights=_MARKET_WEIGHTS
    )[0]
    calendar = _Calendar(rng, ZoneInfo(zone_name), now)
    first, last = rng.choice(firsts), rng.choice(lasts)
    favourite = rng.choice(list(_CATEGORIES))
    registered, active_spans = _timeline(rng, persona, start, now, calendar)
    external_id = f"C{number:07d}"
    birthday = date(rng.randrange(1955, 2005), rng.randrange(1, 13), rng.randrange(1, 29))
    profile: dict[str, Any] = {
        "customer_id": external_id,
        "email": _email(first, last, number),
        "phone": f"{prefix}{rng.randrange(10**7, 10**8)}",
        "name": f"{first} {last}",
        "locale": locale,
        "time_zone": zone_name,
        "birthday": birthday.isoformat(),
        "registered_at": registered.isoformat(),
        "consent_email": rng.random() < 0.85,
        "consent_sms": rng.random() < 0.5,
        "consent_push": rng.random() < 0.4,
        "attributes": {
            "country": country,
            "favourite_category": favourite,
            "acquisition_channel": rng.choice(_CHANNELS),
            "persona": persona.name,
        },
    }
    events = [_event("registered", registered, None, {"channel": "web"})]
    for index, (low, high) in enumerate(active_spans):
        if index:  # a comeback always shows: the customer logs in again
            device = rng.choice(("ios", "android", "web"))
            events.append(_event("login", calendar.between(low, high), None, {"device": device}))
        events.extend(_activity(rng, persona, favourite, low, high, calendar))
    events.sort(key=itemgetter(1))
    return Customer(external_id, profile, events)


def _timeline(
    rng: random.Random, persona: Persona, start: datetime, now: datetime, calendar: _Calendar
) -> tuple[datetime, list[tuple[datetime, datetime]]]:
    """Registration time and the periods in which the customer is active."""
    recent = max(start, now - timedelta(days=80))
    if persona.name == "newcomer":
        registered = calendar.between(recent, now)
        return registered, [(registered, now)]
    if persona.name == "browser":
        registered = calendar.between(start, now)
        return registered, [(registered, now)]
    registered = calendar.between(start, min(start + (now - start) * 0.4, recent))
    if persona.name in ("regular", "high-roller"):
        return registered, [(registered, now)]
    # Lapsed customers went quiet at least 63 days ago (inactive after 60). Returners
    # went quiet too and came back in the last 25 days, after more than 60 days away,
    # so they count as reactivated.
    stop = registered + (now - registered) * rng.uniform(0.2, 0.5)
    stop = max(min(stop, now - timedelta(days=70 + rng.randrange(40))), registered)
    first_span = (registered, min(stop + timedelta(days=7), now))
    if persona.name == "lapsed":
        return registered, [first_span]
    comeback = now - timedelta(days=rng.randrange(3, 25))
    quiet_until = comeback - timedelta(days=64)
    if first_span[1] > quiet_until:
        first_span = (registered, max(quiet_until, registered))
    return registered, [first_span, (max(comeback, first_span[1]), now)]


def _activity(
    rng: random.Random,
    persona: Persona,
    favourite: str,
    low: datetime,
    high: datetime,
    calendar: _Calendar,
) -> Iterator[DemoEvent]:
    weeks = max((high - low).days / 7, 0.3)
    categories = list(_CATEGORIES)
    for _ in range(_poisson(rng, persona.logins_per_week * weeks)):
        at = calendar.between(low, high)
        device = rng.choice(("ios", "android", "web"))
        yield _event("login", at, None, {"device": device})
        if rng.random() < 0.5:
            page = rng.choice(_PAGES)
            yield _event("page_view", _later(at, 1, calendar), None, {"page": page})
        category = favourite if rng.random() < 0.7 else rng.choice(categories)
        product = {"product_id": rng.choice(_PRODUCTS[category]), "category": category}
        if rng.random() < 0.6:
            yield _event("product_view", _later(at, 2, calendar), None, product)
        if not persona.buys and rng.random() < 0.15:
            yield _event("cart_add", _later(at, 4, calendar), None, product)
    months = weeks / 4.345
    purchases = _poisson(rng, persona.purchases_per_month * months) if persona.buys else 0
    for _ in range(purchases):
        at = calendar.between(low, high)
        category = favourite if rng.random() < 0.75 else rng.choice(categories)
        product = {"product_id": rng.choice(_PRODUCTS[category]), "category": category}
        price = _CATEGORIES[category][1] * persona.spend
        amount = round(rng.lognormvariate(0, 0.5) * price, 2)
        quantity = rng.choice((1, 1, 1, 2, 3))
        yield _event("cart_add", at - timedelta(minutes=3), None, product)
        yield _event("purchase", at, amount, {**product, "quantity": quantity})
        if category != "lottery" and rng.random() < 0.12:
            outcome = "big_win" if rng.random() < 0.4 else "big_loss"
            stake = round(amount * rng.uniform(5, 25), 2)
            yield _event(outcome, _later(at, 20, calendar), stake, product)
    if persona.buys and rng.random() < 0.25:
        category = rng.choice(categories)
        abandoned = {"product_id": rng.choice(_PRODUCTS[category]), "category": category}
        yield _event("cart_add", calendar.between(low, high), None, abandoned)


def _later(at: datetime, minutes: int, calendar: _Calendar) -> datetime:
    return min(at + timedelta(minutes=minutes), calendar.now)


def _poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth's method for small means, normal approximation above 30)."""
    if mean <= 0:
        return 0
    if mean > 30:
        return max(0, round(rng.gauss(mean, mean**0.5)))
    limit, product, count = pow(2.718281828459045, -mean), rng.random(), 0
    while product > limit:
        product *= rng.random()
        count += 1
    return count


def _email(first: str, last: str, number: int) -> str:
    plain = "".join(
        ch for ch in f"{first}.{last}".lower().translate(_ASCII) if ch.isalnum() or ch == "."
    )
    domain = ("example.com", "example.org", "example.net")[number % 3]
    return f"{plain}{number}@{domain}"


_ASCII = str.maketrans("ãáàâçéêíóôõúłńśźżąęćöüäß", "aaaaceeiooouanszzaecouas")


def _event(kind: str, at: datetime, value: float | None, properties: dict[str, Any]) -> DemoEvent:
    return (kind, (at - _EPOCH_UTC) // _MICROSECOND, value, properties_document(properties))


async def load_demo_data(
    store: Store, settings: Settings, *, customers: int, days: int, seed: int
) -> tuple[ImportReport, ImportReport]:
    """Generate demo data and import it; returns the customer and event import reports."""
    now = clock.now()
    people = list(generate(customers, days, seed, now))
    rejects = RejectsFile(Path("demo.rejects.jsonl"))
    batch = settings.imports.batch_size
    profiles = CustomerImporter(settings.zone, now)
    rows = (Row(line, person.profile, "") for line, person in enumerate(people, start=1))
    customer_report = await _load(
        store, profiles, parse_chunks(profiles, rows, lambda: 0), rejects, batch
    )
    events = EventImporter(settings.zone, now, SOURCE, settings.imports.max_field_bytes)
    event_report = await _load(store, events, _event_chunks(events, people), rejects, batch)
    if customer_report.rejected or event_report.rejected:
        raise CadenceError(f"demo data was rejected, see {rejects.path}; please report this bug")
    return customer_report, event_report


def _event_chunks(importer: EventImporter, people: list[Customer]) -> Iterator[Chunk[ParsedEvent]]:
    """The people's events as the importer's records, in chunks of about
    :data:`~core.ingest.runner.CHUNK_ROWS`, numbered as the lines of one file would be."""
    record = importer.record
    batch: Batch[ParsedEvent] = Batch()
    line = 1
    for person in people:
        customer = person.external_id
        batch.records.extend(
            record(customer, kind, at, value, document)
            for kind, at, value, document in person.events
        )
        if len(batch) >= CHUNK_ROWS:
            yield _numbered(batch, line)
            line += len(batch)
            batch = Batch()
    yield _numbered(batch, line)


def _numbered(batch: Batch[ParsedEvent], first_line: int) -> Chunk[ParsedEvent]:
    count = len(batch.records)
    batch.lines = list(range(first_line, first_line + count))
    batch.raws = [""] * count
    return Chunk(batch, [], count, 0)


async def _load(
    store: Store,
    importer: Importer[Any],
    chunks: Iterable[Chunk[Any]],
    rejects: RejectsFile,
    batch_size: int,
) -> ImportReport:
    return await run_import(
        store, importer, chunks, rejects, batch_size=batch_size, source_name=SOURCE
    )
