"""Reliability scenarios that no other module covered (see RELIABILITY.md), on both
databases where a store is involved: temporary refusals back off more each time from the
server's hint while a permanent one fails alone; a re-import cannot resubscribe anyone
who unsubscribed or bounced; arbitrary rule text either parses or fails clearly."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from config import DEFAULT_CONFIG_DIR
from core.db import Store
from core.ingest import import_file
from core.models import OutboxMessage, Suppression
from core.planner.launch import run_campaign_now
from core.policy import Outcome
from core.program import load_program
from core.rules import MAX_RULE_LENGTH, RuleError, parse_rule
from core.settings import Settings
from core.sink import SmtpSink
from core.suppressions import suppress_addresses, unsubscribe_customer
from tests.conftest import NOW
from tests.helpers import customers, write
from tests.outbox_world import outbox_states
from tests.planner_world import add_campaign, add_segment, address_of, campaign_spec
from tests.test_delivery import PEOPLE, _configured, _queue, _run, _worker, sink

__all__ = ["sink"]  # the SMTP sink fixture of the delivery tests


async def test_refusals_back_off_from_the_hint_more_each_time_and_a_554_fails_alone(
    store: Store, settings: Settings, sink: SmtpSink
) -> None:
    settings = _configured(
        settings, sink, max_attempts=4, retry_base_seconds=50, retry_max_seconds=10_000
    )
    greylisted, refused, fine = PEOPLE[:3]
    queued = await _queue(store, [greylisted, refused, fine])
    sink.reject[address_of(greylisted) or ""] = (421, "4.7.0 busy, try again in 60 seconds")
    sink.reject[address_of(refused) or ""] = (554, "5.7.1 rejected")
    worker = _worker(store, settings)
    at, waits = NOW, []
    for _ in range(settings.delivery.max_attempts):
        await _run(worker, at)
        async with store.reading() as session:
            row = await session.get_one(OutboxMessage, queued[0])
        if row.state != "retry":
            break
        assert row.next_attempt_at is not None
        waits.append((row.next_attempt_at - at).total_seconds())
        at = row.next_attempt_at

    # 50 s doubling, +-20 % jitter, never under the hint: 60, then 80-120, then 160-240.
    assert len(waits) == 3 and waits[0] == 60
    assert waits[0] < waits[1] < waits[2], waits
    states = await outbox_states(store)
    state, error = states[queued[0]]
    assert state == "failed" and error is not None and error.startswith("gave up after 4")
    state, error = states[queued[1]]
    assert state == "failed" and error is not None and "554" in error
    assert states[queued[2]] == ("sent", None)
    async with store.reading() as session:
        refused_row = await session.get_one(OutboxMessage, queued[1])
        suppressed = (await session.execute(select(Suppression.address))).scalars().all()
    assert refused_row.attempts == 1, "a permanent refusal is never tried again"
    assert suppressed == [address_of(refused)]
    assert sink.stats().received == 1


async def test_a_reimport_cannot_resubscribe_the_unsubscribed_or_the_bounced(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    def rows(domain: str) -> str:
        lines = "".join(f"{who},{who}@{domain},true\n" for who in ("left", "bounced", "stays"))
        return "customer_id,email,consent_email\n" + lines

    first = write(tmp_path / "first.csv", rows("example.com"))
    assert (await import_file(store, settings, "customers", first)).inserted == 3
    ids = {key: row.id for key, row in (await customers(store)).items()}
    async with store.transaction() as session:
        await unsubscribe_customer(session, ids["left"], "email", "one-click", NOW)
        await suppress_addresses(
            session, "email", ["bounced@example.com"], "hard_bounce", "smtp", NOW
        )
    # The same customers again from the CRM's nightly export, the domain in capitals.
    again = write(tmp_path / "again.csv", rows("EXAMPLE.COM"))
    await import_file(store, settings, "customers", again)

    await add_segment(store, "all", list(ids.values()), NOW)
    await add_campaign(store, campaign_spec("offer", "all", kind="ad_hoc"), NOW)
    settings.policy.quiet_hours = None
    program = load_program(DEFAULT_CONFIG_DIR / "program")
    offer = await run_campaign_now(store, program, settings, "offer", NOW)

    assert offer.plan.outcomes == {
        Outcome.QUEUED: 1,
        Outcome.UNSUBSCRIBED: 1,
        Outcome.SUPPRESSED: 1,
    }
    async with store.reading() as session:
        queued = (await session.execute(select(OutboxMessage.customer_id))).scalars().all()
    assert queued == [ids["stays"]]


rule_text = st.lists(
    st.sampled_from(
        [
            *"abcdefghijklmnopqrstuvwxyz_0123456789 .,;:()[]{}<>=!+-*/%\"'\\\n\t",
            *("and ", "or ", "not ", "in ", "==", "days", "revenue_total", "attr(", "'; DROP"),
        ]
    ),
    max_size=40,
).map("".join)
"""Rule-like text: characters and words of the rule language in any order."""


@given(text=st.one_of(rule_text, st.text(max_size=60)))
@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
def test_any_rule_text_parses_or_fails_with_its_position(text: str) -> None:
    try:
        rule = parse_rule(text)
    except RuleError as error:  # the only way a rule may fail: a message and a place
        assert str(error)
        assert error.line is None or error.line >= 1
        assert error.column is None or 0 <= error.column <= len(text) + 1
        return
    assert len(text) <= MAX_RULE_LENGTH and rule.tree is not None
