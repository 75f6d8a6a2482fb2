"""What the console's launch wizard reads from core, on SQLite and PostgreSQL: a launched
run's progress through the outbox, the templates a channel can send, a message rendered
for the sample customer, and launch problems by field."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import update

from config import DEFAULT_CONFIG_DIR
from core.db import Store
from core.models import OutboxMessage
from core.outbox import run_delivery_progress
from core.planner.launch import LaunchSpecError, launch_campaign, launch_spec
from core.program import load_program
from core.program.model import CampaignSpec
from core.settings import Settings
from core.templates import TemplateRenderError, available_templates, render_sample
from tests.conftest import NOW
from tests.planner_world import Person, add_people, add_segment

TEMPLATES = DEFAULT_CONFIG_DIR / "templates"


def _spec(segment: str, control: float = 0, name: str | None = None) -> CampaignSpec:
    return launch_spec(
        segment=segment,
        stage=None,
        rule=None,
        template="offer_a",
        channel="email",
        control=control,
        priority=50,
        name=name,
        now=NOW,
    )


async def test_a_runs_progress_counts_its_outbox_rows_by_state(
    store: Store, settings: Settings
) -> None:
    ids = await add_people(store, [Person(f"c{i}") for i in range(10)], NOW)
    await add_segment(store, "ten", list(ids.values()), NOW)
    settings.policy.quiet_hours = None
    settings.templates_dir = TEMPLATES
    program = load_program(DEFAULT_CONFIG_DIR / "program")
    launched = await launch_campaign(store, program, settings, _spec("ten", control=20), NOW)
    assert launched.planned is not None
    async with store.reading() as session:
        progress = await run_delivery_progress(session, launched.run_id)
    plan = launched.planned.plan
    assert progress.status == "planned"
    assert progress.messages == plan.targeted - plan.excluded - progress.states["control"]
    assert progress.states["queued"] == progress.messages
    assert (progress.sent, progress.settled, progress.finished) == (0, 0, False)

    async with store.transaction() as session:
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.run_id == launched.run_id, OutboxMessage.state == "queued")
            .values(state="sent", sent_at=NOW)
        )
    async with store.reading() as session:
        done = await run_delivery_progress(session, launched.run_id)
    assert done.sent == done.settled == progress.messages and done.finished

    later = await launch_campaign(
        store, program, settings, _spec("ten", name="later"), NOW, at=NOW.replace(year=2027)
    )
    async with store.reading() as session:
        waiting = await run_delivery_progress(session, later.run_id)
    assert (waiting.status, waiting.messages, waiting.states, waiting.finished) == (
        "pending",
        0,
        {},
        False,
    )


def test_a_channel_offers_the_templates_with_every_file_it_needs() -> None:
    email = available_templates("email", TEMPLATES)
    assert "offer_a" in email and "welcome" in email
    assert "bonus_sms" not in email, "it has no subject"
    assert available_templates("sms", TEMPLATES) == sorted(
        path.name.removesuffix(".txt.j2") for path in TEMPLATES.glob("*.txt.j2")
    )
    assert email == sorted(email)


def test_the_sample_message_is_rendered_as_the_campaign_would_send_it(tmp_path: Path) -> None:
    settings = Settings(settings_file=tmp_path / "cadence.toml")
    message = render_sample(TEMPLATES, settings.templates, "welcome", "email", "spring-launch")
    assert message.subject and "Maria" in message.text
    assert message.html is not None
    (tmp_path / "broken.txt.j2").write_text("{{ customer.name | nosuchfilter }}\n")
    (tmp_path / "broken.subject.j2").write_text("Hello\n")
    with pytest.raises(TemplateRenderError, match="broken"):
        render_sample(tmp_path, settings.templates, "broken", "email", "spring-launch")


def test_launch_problems_are_told_by_field() -> None:
    with pytest.raises(LaunchSpecError) as raised:
        launch_spec(
            segment="Not A Name",
            stage=None,
            rule=None,
            template="offer_a",
            channel="email",
            control=150,
            priority=5000,
            name="Bad Name",
            now=NOW,
        )
    assert set(raised.value.fields) == {"target.segment", "control", "priority", "name"}
    assert "less than or equal to 100" in raised.value.fields["control"]
    assert str(raised.value).startswith("cannot launch: ")
