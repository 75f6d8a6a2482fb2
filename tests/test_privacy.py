"""Scenarios 13 and 14 of the reliability suite on both databases: ``cadence customer
export`` writes every row held about a customer, and ``cadence customer erase`` leaves
none of their data anywhere but hashed identifiers, which keep imports from bringing
them back; planning and a worker that already claimed their message skip them."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Text, case, cast, func, select

from config import DEFAULT_CONFIG_DIR
from core import clock
from core.db import Store
from core.ingest import import_file
from core.ingest.live import UNKNOWN_CUSTOMER, ingest_events
from core.ingest.source import Row
from core.models import (
    AuditEntry,
    Base,
    CampaignContact,
    CustomerChannel,
    CustomerRecommendation,
    CustomerScore,
    CustomerSendTime,
    CustomerStage,
    Event,
    InAppMessage,
    Journey,
    JourneyState,
    KpiSnapshot,
    OutboxMessage,
    OutboxSend,
    SegmentChange,
    StageTransition,
    Suppression,
)
from core.planner.launch import run_campaign_now
from core.policy import Outcome
from core.privacy import (
    ERASED,
    CustomerNotFoundError,
    customer_tables,
    erase_customer,
    export_customer,
)
from core.program import load_program
from core.rollups import note_messages_sent
from core.settings import Settings
from core.sink import SmtpSink
from core.suppressions import suppress_addresses, unsubscribe_customer
from tests.conftest import NOW
from tests.helpers import customers, jsonl, rejects_of, write
from tests.outbox_world import outbox_states, queue_messages
from tests.planner_world import (
    Person,
    add_campaign,
    add_people,
    add_segment,
    address_of,
    campaign_spec,
)
from tests.test_delivery import _configured, _worker, sink
from tests.test_operations import _cadence, _cadence_process

__all__ = ["sink"]  # the SMTP sink fixture of the delivery tests

ANA = "ana-7f3k"
ANA_EMAIL = "Ana.Lima@Example.com"
STORED_EMAIL = "Ana.Lima@example.com"
"""As the importer keeps it: the domain in lower case."""
PERSONAL = ("ana-7f3k", "ana.lima@example.com", "ana lima", "912345678", "lisbon-42")
"""What identifies Ana, in lower case as the search after an erasure compares it."""
NOT_ABOUT_CUSTOMERS = {
    "campaign_runs",
    "campaign_uplifts",
    "campaigns",
    "clv_fits",
    "job_runs",
    "journeys",
    "kpi_snapshots",
    "message_tallies",
    "program_versions",
    "recommendations",
    "scheduler_nodes",
    "segment_sizes",
    "segments",
    "signing_keys",
}
"""Tables that hold nothing about one customer: a new table must be added here or refer
to ``customers``, so none is left out of the export and the erasure unnoticed."""


async def _world(store: Store, settings: Settings, tmp_path: Path) -> dict[str, int]:
    """Ana and Bruno with a row in every table that can hold something about a customer,
    through the importers where they write it and straight to the store elsewhere."""
    people = write(
        tmp_path / "people.csv",
        "customer_id,email,phone,name,consent_email,consent_sms,city\n"
        f"{ANA},{ANA_EMAIL},+351 912 345 678,Ana Lima,true,true,Lisbon-42\n"
        "bruno,bruno@example.com,+351 913 000 000,Bruno Reis,true,true,Porto\n",
    )
    assert (await import_file(store, settings, "customers", people)).inserted == 2
    events = jsonl(
        tmp_path / "events.jsonl",
        *(
            {"customer_id": who, "type": kind, "occurred_at": at.isoformat(), "note": who}
            for who in (ANA, "bruno")
            for kind, at in (("page_view", NOW - timedelta(days=1)), ("login", NOW))
        ),
        # Dated after now: held back, with a pending rollup, until its time comes.
        {"customer_id": ANA, "type": "login", "occurred_at": (NOW + timedelta(days=1)).isoformat()},
    )
    with clock.using(clock.FixedClock(NOW)):
        assert (await import_file(store, settings, "events", events)).inserted == 5
        purchases = write(
            tmp_path / "purchases.csv",
            f"customer_id,date,quantity,amount\n{ANA},2026-11-01,1,30\nbruno,2026-11-02,2,50\n",
        )
        assert (await import_file(store, settings, "transactions", purchases)).inserted == 2
    ids = {key: row.id for key, row in (await customers(store)).items()}
    ana, bruno = ids[ANA], ids["bruno"]
    segment = await add_segment(store, "loyal", [ana, bruno], NOW)
    campaign = await add_campaign(store, campaign_spec("offer", "loyal"), NOW)
    queued = await queue_messages(store, campaign, [ana, bruno], NOW)
    last_week = NOW - timedelta(days=7)
    [sent] = await queue_messages(store, campaign, [ana], last_week, run_key="last-week")
    async with store.transaction() as session:
        failed = await session.get_one(OutboxMessage, queued[0])
        failed.state, failed.error = "failed", f"550 5.1.1 <{STORED_EMAIL}>: no such user"
        message = await session.get_one(OutboxMessage, sent)
        message.state, message.sent_at = "sent", last_week
        session.add(OutboxSend(outbox_id=sent, sent_at=last_week))  # not folded in yet
        journey = Journey(name="welcome", definition={}, digest="x", created_at=NOW, updated_at=NOW)
        session.add(journey)
        await session.flush()
        for who in (ana, bruno):
            session.add_all(
                [
                    CustomerStage(customer_id=who, stage="active", entered_at=NOW),
                    StageTransition(customer_id=who, to_stage="active", at=NOW),
                    CustomerScore(customer_id=who, rfm_score=455, refreshed_at=NOW),
                    CustomerSendTime(
                        customer_id=who, hour=9, share=0.4, events=3, refreshed_at=NOW
                    ),
                    CustomerChannel(
                        customer_id=who,
                        channel="email",
                        response_rate=0.2,
                        messages=3,
                        refreshed_at=NOW,
                    ),
                    SegmentChange(segment_id=segment, customer_id=who, entered=True, at=NOW),
                    CampaignContact(
                        campaign_id=campaign, customer_id=who, last_due_at=NOW, times=1
                    ),
                    CustomerRecommendation(customer_id=who, rank=1, product_id="p-1", score=2.0),
                    JourneyState(
                        journey_id=journey.id,
                        customer_id=who,
                        step="hello",
                        status="active",
                        entered_at=NOW,
                        step_since=NOW,
                    ),
                ]
            )
        session.add(
            InAppMessage(
                outbox_id=queued[0],
                customer_id=ana,
                campaign="offer",
                title="Hello Ana Lima",
                body="Your offer",
                created_at=NOW,
            )
        )
        session.add(
            KpiSnapshot(
                day=date(2026, 11, 22),
                stage="active",
                kpi="coverage_30d",
                value=1.0,
                window_days=30,
                computed_at=NOW,
            )
        )
        await unsubscribe_customer(session, ana, "sms", "one-click", NOW)
        await suppress_addresses(session, "email", [STORED_EMAIL], "complaint", "arf", NOW)
    return ids


def _customer_tables() -> set[str]:
    return {table.name for table in customer_tables()}


async def test_the_export_holds_every_table_about_the_customer_and_only_their_rows(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    ids = await _world(store, settings, tmp_path)
    await export_customer(store, ANA, NOW)  # exports are audited: the next one shows it
    exported = await export_customer(store, ANA, NOW)

    tables = exported["tables"]
    expected = _customer_tables() | {"suppressions", "audit_log"}
    assert set(tables) == expected
    assert set(Base.metadata.tables) == expected | NOT_ABOUT_CUSTOMERS
    for table in Base.metadata.sorted_tables:  # no customer reference without a foreign key
        references = [c.name for c in table.columns if c.name.endswith("customer_id")]
        assert table.name in expected or not references, (table.name, references)
    assert all(tables[name] for name in expected), "the world has a row of Ana's in each"
    for name, rows in tables.items():
        for row in rows:
            assert row.get("customer_id", ids[ANA]) == ids[ANA], (name, row)
    [ana] = tables["customers"]
    assert (ana["external_id"], ana["email"], ana["name"]) == (ANA, STORED_EMAIL, "Ana Lima")
    assert ana["phone"] == "+351912345678" and ana["attributes"] == {"city": "Lisbon-42"}
    assert {row["type"] for row in tables["events"]} == {"page_view", "login", "purchase"}
    assert len(tables["events"]) == 4 and len(tables["pending_rollups"]) == 1
    assert {(row["channel"], row["reason"]) for row in tables["suppressions"]} == {
        ("sms", "unsubscribed"),
        ("email", "complaint"),
    }
    [audited] = tables["audit_log"]
    assert audited["action"] == "customer.export" and audited["target"] == f"customer:{ANA}"
    assert {row["state"] for row in tables["outbox"]} == {"failed", "sent"}
    [failed] = [row for row in tables["outbox"] if row["state"] == "failed"]
    assert "no such user" in failed["error"]
    assert exported["names"] == {
        "campaigns": {str(failed["campaign_id"]): "offer"},
        "journeys": {str(tables["journey_states"][0]["journey_id"]): "welcome"},
        "segments": {str(tables["segment_members"][0]["segment_id"]): "loyal"},
    }
    json.dumps(exported)  # plain JSON data throughout


async def _personal_data_left(store: Store) -> list[tuple[str, str, str]]:
    """Every (table, column, needle) where any column of any table, read as text, still
    holds something of :data:`PERSONAL`."""
    found = []
    async with store.reading() as session:
        for table in Base.metadata.sorted_tables:
            places = [(column, needle) for column in table.columns for needle in PERSONAL]
            counts = select(
                *(
                    func.sum(case((func.lower(cast(column, Text)).contains(needle), 1), else_=0))
                    for column, needle in places
                )
            ).select_from(table)
            row = (await session.execute(counts)).one()
            found += [
                (table.name, c.name, n) for (c, n), hits in zip(places, row, strict=True) if hits
            ]
    return found


async def _row_counts(store: Store) -> dict[str, int]:
    async with store.reading() as session:
        return {
            table.name: await session.scalar(select(func.count()).select_from(table)) or 0
            for table in Base.metadata.sorted_tables
        }


async def test_an_erasure_leaves_no_personal_data_and_keeps_hashed_identifiers(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    ids = await _world(store, settings, tmp_path)
    await export_customer(store, ANA, NOW)
    assert await _personal_data_left(store), "the search finds Ana before the erasure"
    before = await _row_counts(store)

    erasure = await erase_customer(store, ANA, NOW)

    assert await _personal_data_left(store) == []
    assert set(erasure.deleted) == _customer_tables() | {"suppressions"}
    assert erasure.audit_entries == 1 and erasure.identifiers == 3
    after = await _row_counts(store)
    async with store.reading() as session:
        kept = (await session.execute(select(Suppression.channel, Suppression.reason))).all()
        audit = (await session.execute(select(AuditEntry).order_by(AuditEntry.id))).scalars()
        entries = [(entry.action, entry.target, entry.details) for entry in audit]
        bruno = await session.scalar(
            select(func.count()).select_from(Event).where(Event.customer_id == ids["bruno"])
        )
    added = {"suppressions": erasure.identifiers, "audit_log": 1, "signing_keys": 1}
    for name, count in before.items():  # Ana's rows went, everyone else's stayed
        assert after[name] == count - erasure.deleted.get(name, 0) + added.get(name, 0), name
    assert after["kpi_snapshots"] == 1 and bruno == 3
    assert sorted(kept) == [(ERASED, ERASED)] * 3
    exported, erased = entries[-2:]
    assert exported == ("customer.export", erasure.reference, None)
    assert erased[0] == "customer.erase" and erased[1] == erasure.reference
    assert erasure.reference.startswith("customer:erased:") and len(erasure.reference) == 80
    with pytest.raises(CustomerNotFoundError, match="was erased"):
        await erase_customer(store, ANA, NOW)
    with pytest.raises(CustomerNotFoundError, match="no customer has the id `nobody`"):
        await export_customer(store, "nobody", NOW)


async def test_an_erased_customer_cannot_be_imported_again_nor_planned(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    await _world(store, settings, tmp_path)
    await erase_customer(store, ANA, NOW)

    # The CRM's next export: Ana by her id, by her e-mail in other capitals under a new
    # id, by her phone written otherwise, and someone new.
    again = write(
        tmp_path / "again.csv",
        "customer_id,email,phone,name,consent_email\n"
        f"{ANA},,,Ana Lima,true\n"
        f"ana-new,ANA.LIMA@example.COM,,Ana L.,true\n"
        f"ana-sms,,+351-912-345-678,,true\n"
        "carla,carla@example.com,,Carla,true\n",
    )
    report = await import_file(store, settings, "customers", again)
    assert (report.inserted, report.erased, report.rejected) == (1, 3, 0)
    assert not (tmp_path / "again.csv.rejects.jsonl").exists(), "no copy of her row is kept"
    late = jsonl(
        tmp_path / "late.jsonl",
        {"customer_id": ANA, "type": "login", "occurred_at": NOW.isoformat()},
        {"customer_id": "carla", "type": "login", "occurred_at": NOW.isoformat()},
    )
    report = await import_file(store, settings, "events", late)
    assert (report.inserted, report.erased, report.rejected) == (1, 1, 0)
    assert rejects_of(tmp_path / "late.jsonl.rejects.jsonl") == []
    bought = write(
        tmp_path / "bought.csv", f"customer_id,date,quantity,amount\n{ANA},2026-11-20,1,9\n"
    )
    report = await import_file(store, settings, "transactions", bought)
    assert (report.inserted, report.erased, report.customers_created) == (0, 1, 0)
    settings.ingest.unknown_customers = "create"
    program = load_program(DEFAULT_CONFIG_DIR / "program")
    live = await ingest_events(
        store,
        program,
        settings,
        [Row(1, {"customer_id": ANA, "type": "login", "occurred_at": NOW.isoformat()}, "")],
        NOW,
        source="api",
    )
    assert (live.stored, live.customers_created) == (0, 0)
    [refused] = live.refused
    assert refused.status == UNKNOWN_CUSTOMER and "was erased" in refused.reason
    assert set(await customers(store)) == {"bruno", "carla"}

    members = [row.id for row in (await customers(store)).values()]
    await add_segment(store, "all", members, NOW)
    await add_campaign(store, campaign_spec("news", "all", kind="ad_hoc"), NOW)
    settings.policy.quiet_hours = None
    news = await run_campaign_now(store, program, settings, "news", NOW)
    # Bruno was sent the world's offer today: the frequency cap holds him back.
    assert news.plan.outcomes == {Outcome.QUEUED: 1, Outcome.CAPPED: 1}
    assert await _personal_data_left(store) == []


async def test_an_address_another_customer_shares_stays_theirs(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    family = write(
        tmp_path / "family.csv",
        "customer_id,email,consent_email\nana,home@example.com,true\nrui,home@example.com,true\n",
    )
    assert (await import_file(store, settings, "customers", family)).inserted == 2
    async with store.transaction() as session:
        await suppress_addresses(
            session, "email", ["Home@example.com"], "unsubscribed", "one-click", NOW
        )

    await erase_customer(store, "ana", NOW)

    async with store.reading() as session:
        kept = (await session.execute(select(Suppression.channel, Suppression.address))).all()
    assert ("email", "Home@example.com") in kept, "Rui unsubscribed that address too"
    again = await import_file(store, settings, "customers", family)
    assert (again.erased, again.unchanged) == (1, 1), "Rui stays; Ana does not come back"


async def test_a_message_claimed_before_the_erasure_is_not_sent(
    store: Store, settings: Settings, sink: SmtpSink
) -> None:
    settings = _configured(settings, sink)
    ids = await add_people(store, [Person(ANA), Person("bruno")], NOW)
    campaign = await add_campaign(store, campaign_spec("offer", "everyone"), NOW)
    [_, brunos] = await queue_messages(store, campaign, [ids[ANA], ids["bruno"]], NOW)
    worker = _worker(store, settings)
    with clock.using(clock.FixedClock(NOW)):
        await worker.channels["email"].open()
        batch, _ = await worker.claim("email")
        assert {message.customer_id for message in batch} == {ids[ANA], ids["bruno"]}
        await erase_customer(store, ANA, NOW)
        await worker.deliver("email", batch)
        await worker.close()

    assert [message.recipients for message in sink.messages] == [(address_of(Person("bruno")),)]
    assert list(await outbox_states(store)) == [brunos], "Ana's message went with her"
    # A message the server accepted just before the erasure: recording it finds no one.
    async with store.transaction() as session:
        await note_messages_sent(session, [ids[ANA], ids["bruno"]], NOW)


async def test_the_customer_commands_export_erase_and_refuse_unknown_ids(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    await _world(store, settings, tmp_path)
    url = settings.database_url
    output = tmp_path / "ana.json"

    printed = await _cadence(url, "customer", "export", ANA)
    saved = await _cadence(url, "customer", "export", ANA, "--output", str(output))
    unanswered = await _cadence(url, "customer", "erase", ANA)  # no --yes, no answer
    erased = await _cadence(url, "customer", "erase", ANA, "--yes")
    unknown = await _cadence_process(url, "customer", "export", ANA)

    assert printed.returncode == 0 and json.loads(printed.stdout)["customer_id"] == ANA
    assert saved.returncode == 0 and json.loads(output.read_text())["tables"]["customers"]
    assert output.stat().st_mode & 0o077 == 0, "the export is readable by its owner alone"
    assert unanswered.returncode != 0
    assert erased.returncode == 0, erased.stdout
    assert "customer:erased:" in erased.stdout
    assert re.search(r"^ *events deleted +4 *$", erased.stdout, re.M), erased.stdout
    assert re.search(r"^ *hashed identifiers kept +3 *$", erased.stdout, re.M)
    assert unknown.returncode == 1 and f"customer `{ANA}` was erased" in unknown.stderr
    assert set(await customers(store)) == {"bruno"}
