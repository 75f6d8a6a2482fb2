"""What a template sees: one customer's plain data, built for each message.

Templates get dicts, lists, text, numbers and dates, never ORM objects, and
two callables whose workings a template cannot reach: ``link(url)`` (the
tracked address of a call-to-action) and ``recommendations(n)`` (the first
``n`` products picked for the customer). The sandbox refuses private
attributes, so the function behind each stays out of sight.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

_SCALARS = frozenset({str, int, float, bool, type(None), date, datetime})


class TrackedLink:
    """``link('https://...')`` in a template: the address to print instead, which counts
    the click and then goes to ``url``."""

    __slots__ = ("_track",)

    def __init__(self, track: Callable[[str], str]) -> None:
        self._track = track

    def __call__(self, url: Any) -> str:
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            shown = repr(url[:80]) if isinstance(url, str) else f"a {type(url).__name__}"
            raise ValueError(f"link() takes an absolute http(s) address, not {shown}")
        return self._track(str(url))

    def __repr__(self) -> str:
        return "link(url)"


class Recommendations:
    """``recommendations(n)`` in a template: the first ``n`` products recommended to the
    customer, best first, each a dict with ``product_id`` and ``score``."""

    __slots__ = ("_products",)

    def __init__(self, products: Sequence[Mapping[str, Any]]) -> None:
        self._products = products

    def __call__(self, n: Any) -> list[dict[str, Any]]:
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError("recommendations(n) takes how many products to show, e.g. 3")
        # Made plain here, not per message: most templates never ask.
        return [_plain_mapping(product) for product in self._products[:n]]

    def __repr__(self) -> str:
        return "recommendations(n)"


def message_context(
    *,
    customer: Mapping[str, Any],
    stage: str | None,
    scores: Mapping[str, Any],
    campaign: str,
    variant: str,
    brand: str,
    unsubscribe_url: str | None,
    open_url: str | None,
    link: Callable[[str], str],
    recommendations: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """The variables of one message's templates.

    ``customer`` holds the customer's fields as the worker reads them (``id``,
    ``email``, ``phone``, ``name``, ``locale``, ``time_zone``, ``birthday``,
    ``registered_at``, ``attributes``); ``first_name`` is derived from
    ``name`` unless given. ``scores`` are the customer's row of
    ``customer_scores``. ``open_url`` is the open pixel's address, ``link``
    turns a destination into its tracked address, ``recommendations`` are
    the customer's picks, best first. Raises :class:`TypeError` for a value
    that is not plain data.
    """
    person = _plain_mapping(customer)
    person.setdefault("attributes", {})
    if "first_name" not in person:
        person["first_name"] = _first_name(person.get("name"))
    return {
        "customer": person,
        "stage": stage,
        "scores": _plain_mapping(scores),
        "campaign": campaign,
        "variant": variant,
        "brand": brand,
        "unsubscribe_url": unsubscribe_url,
        "open_url": open_url,
        "link": TrackedLink(link),
        "recommendations": Recommendations(recommendations),
    }


def sample_context(brand: str) -> dict[str, Any]:
    """A realistic customer's variables, for ``cadence program validate`` and previews:
    every field a real message has, with believable values."""
    return message_context(
        customer={
            "id": "C0001234",
            "email": "maria.silva@example.com",
            "phone": "+351912345678",
            "name": "Maria Silva",
            "locale": "pt-PT",
            "time_zone": "Europe/Lisbon",
            "birthday": "1988-05-17",
            "registered_at": "2025-03-02T18:45:00+00:00",
            "attributes": {
                "country": "PT",
                "favourite_category": "slots",
                "acquisition_channel": "organic",
                "persona": "regular",
            },
        },
        stage="active",
        scores={
            "recency_score": 5,
            "frequency_score": 4,
            "monetary_score": 4,
            "rfm_score": 544,
            "engagement_score": 12.5,
            "lead_score": 3.0,
            "purchases_30d": 3,
            "purchases_90d": 7,
            "purchases_365d": 22,
            "revenue_90d": 245.5,
            "revenue_365d": 812.3,
            "expected_purchases_90d": 6.2,
            "p_alive": 0.93,
            "clv_12m": 640.0,
        },
        campaign="sample-campaign",
        variant="sample",
        brand=brand,
        unsubscribe_url="https://links.example.com/u/SAMPLE-TOKEN",
        open_url="https://links.example.com/o/SAMPLE-TOKEN",
        link=lambda url: f"https://links.example.com/c/SAMPLE-TOKEN?to={quote(url, safe='')}",
        recommendations=[
            {"product_id": product, "score": score}
            for product, score in (
                ("slots-004", 3.42),
                ("live-casino-002", 2.87),
                ("slots-011", 2.15),
                ("sports-007", 1.64),
                ("poker-003", 1.21),
                ("lottery-001", 0.93),
                ("slots-016", 0.88),
                ("live-casino-009", 0.75),
                ("sports-001", 0.61),
                ("poker-008", 0.52),
            )
        ],
    )


def _first_name(name: Any) -> str | None:
    parts = name.split() if isinstance(name, str) else []
    return parts[0] if parts else None


def _plain_mapping(mapping: Mapping[str, Any]) -> dict[str, Any]:
    return {str(key): _plain(value) for key, value in mapping.items()}


def _plain(value: Any) -> Any:
    """``value`` as plain data: text (never pre-marked safe HTML), numbers, dates, lists
    and dicts; anything else is a mistake of the caller."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if isinstance(value, str):
        return str(value)  # a str subclass such as Markup would skip HTML escaping
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, Mapping):
        return _plain_mapping(value)
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    raise TypeError(
        f"templates take plain data (text, numbers, dates, lists, mappings), not {kind.__name__}"
    )
