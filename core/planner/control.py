"""Control groups: a deterministic hash of (campaign, customer) picks each customer's arm.

The hash is integer arithmetic that SQLite and PostgreSQL compute alike (and
:func:`control_bucket` in Python, the tests' oracle), so a customer stays in
the same arm of a campaign across runs, restarts and databases. It is a
32-bit integer mix (multiply, xor-shift, twice); xor is spelled
``(a | b) - (a & b)`` because SQLite has no xor operator, and every
intermediate stays below 2**63.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Integer, literal

BUCKETS = 10_000
"""Control percentages resolve to hundredths of a percent."""
_MASK = 0xFFFF_FFFF
_MULTIPLIER = 0x045D_9F3B


def campaign_salt(campaign: str) -> int:
    """A campaign's 31-bit salt, from its name: renaming a campaign redraws its arms."""
    return int.from_bytes(hashlib.sha256(campaign.encode()).digest()[:4], "big") & 0x7FFF_FFFF


def control_threshold(percent: float) -> int:
    """Buckets below this are control: ``percent`` of :data:`BUCKETS`."""
    return round(percent * BUCKETS / 100)


def control_bucket(campaign: str, customer_id: int) -> int:
    """The customer's bucket for the campaign, in ``[0, BUCKETS)``."""
    mixed = ((customer_id & _MASK) * _MULTIPLIER + campaign_salt(campaign)) & _MASK
    for last in (False, True):
        mixed ^= mixed >> 16
        if not last:
            mixed = (mixed * _MULTIPLIER) & _MASK
    return mixed % BUCKETS


def control_bucket_sql(
    customer_id: ColumnElement[Any], salt: ColumnElement[Any] | int
) -> ColumnElement[int]:
    """:func:`control_bucket` as a SQL expression over ``customer_id`` and the campaign's
    ``salt`` (:func:`campaign_salt`, as a number or a column holding it)."""

    def number(value: int) -> ColumnElement[int]:
        return literal(value, BigInteger)

    def xor_shift(value: ColumnElement[Any]) -> ColumnElement[Any]:
        shifted = value.op(">>")(literal(16, Integer))  # PostgreSQL shifts by an int
        return value.op("|")(shifted) - value.op("&")(shifted)

    salted = number(salt) if isinstance(salt, int) else salt
    first = customer_id.op("&")(number(_MASK)) * number(_MULTIPLIER) + salted
    mixed = first.op("&")(number(_MASK))
    mixed = (xor_shift(mixed) * number(_MULTIPLIER)).op("&")(number(_MASK))
    return xor_shift(mixed) % number(BUCKETS)
