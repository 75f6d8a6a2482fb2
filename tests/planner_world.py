"""A small world for planner tests: customers, segments and campaigns written straight
to the store, so each test states exactly what the planner sees."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select

from core.campaigns import store_campaign
from core.db import Store
from core.models import Customer, Segment, SegmentMember, Suppression
from core.program.model import CampaignSpec


@dataclass(frozen=True)
class Person:
    """A customer as a test describes them."""

    key: str
    email: str | None = "x@example.com"
    consent_email: bool | None = True
    time_zone: str | None = None
    phone: str | None = None
    consent_sms: bool | None = None


async def add_people(store: Store, people: list[Person], now: datetime) -> dict[str, int]:
    """Insert ``people``; their ids by key. E-mail addresses are made unique per person."""
    rows: list[dict[str, Any]] = [
        {
            "external_id": person.key,
            "email": None if person.email is None else f"{person.key}+{person.email}",
            "consent_email": person.consent_email,
            "phone": person.phone,
            "consent_sms": person.consent_sms,
            "time_zone": person.time_zone,
            "registered_at": now,
            "attributes": {},
            "created_at": now,
            "updated_at": now,
        }
        for person in people
    ]
    async with store.transaction() as session:
        if rows:
            await session.execute(insert(Customer), rows)
        found = await session.execute(select(Customer.external_id, Customer.id))
        return {key: customer_id for key, customer_id in found}


def address_of(person: Person) -> str | None:
    return None if person.email is None else f"{person.key}+{person.email}"


async def add_segment(store: Store, name: str, members: list[int], now: datetime) -> int:
    async with store.transaction() as session:
        segment = Segment(
            name=name,
            description=name,
            rule="true",
            tags=[],
            created_at=now,
            updated_at=now,
            size=len(members),
        )
        session.add(segment)
        await session.flush()
        if members:
            await session.execute(
                insert(SegmentMember),
                [{"segment_id": segment.id, "customer_id": c, "entered_at": now} for c in members],
            )
        return segment.id


async def suppress(store: Store, address: str, reason: str, now: datetime) -> None:
    async with store.transaction() as session:
        session.add(Suppression(channel="email", address=address, reason=reason, created_at=now))


def campaign_spec(name: str, segment: str, **fields: Any) -> CampaignSpec:
    values: dict[str, Any] = {
        "name": name,
        "kind": "cycle",
        "target": {"segment": segment},
        "channel": "email",
        "variants": ["offer_a"],
        "schedule": "0 10 * * *",
        "control": 0,
    }
    values.update(fields)
    if values["kind"] != "cycle":
        values.pop("schedule", None)
    return CampaignSpec.model_validate(values)


async def add_campaign(store: Store, spec: CampaignSpec, now: datetime) -> int:
    async with store.transaction() as session:
        campaign = store_campaign(session, spec, origin="program", now=now)
        await session.flush()
        return campaign.id
