"""``cadence simulate``: the program over simulated days, with a known true effect."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from config import DEFAULT_SETTINGS_FILE
from core.cli import cli
from core.db import Store
from core.models import Event, OutboxMessage
from core.settings import Settings
from core.simulate import SimulationSpec, run_simulation
from core.simulate.behaviour import (
    Behaviour,
    Population,
    Responder,
    Sent,
    background_events,
    make_population,
)

_DAY = 24 * 3_600_000_000
_START = 1_767_571_200_000_000  # 2026-01-05 00:00 UTC in epoch micros


def _population(size: int, behaviour: Behaviour, seed: int = 3) -> Population:
    ids = list(range(1, size + 1))
    return make_population(ids, ["UTC"] * size, ["regular"] * size, behaviour, seed)


def test_the_true_effect_is_what_receiving_a_message_adds_to_the_goal() -> None:
    """Conversion within the goal window among treated customers exceeds the untreated
    base rate by the effect (the base comes from the same background behaviour)."""
    behaviour = Behaviour(base_rate=0.05, effect=0.02)
    size = 200_000
    people = _population(size, behaviour)
    background = background_events(people, _START, _START + 40 * _DAY, seed=3)
    responder = Responder(people, behaviour, background, seed=3)
    window = 7 * _DAY
    planned = np.full(size, _START + 10 * _DAY, dtype=np.int64)
    sent = Sent(
        outbox_id=np.arange(size, dtype=np.int64),
        who=np.arange(size, dtype=np.int64),
        planned_at=planned,
        sent_at=_START + 10 * _DAY + 3_600_000_000,
        goal=["purchase"] * size,
        window=np.full(size, window, dtype=np.int64),
    )
    events = responder.respond(sent, np.zeros(1, dtype=np.int64))
    buyers_who, buyers_at, _ = background["purchase"]
    in_window = (buyers_at > planned[buyers_who]) & (buyers_at <= planned[buyers_who] + window)
    natural = np.zeros(size, dtype=bool)
    natural[buyers_who[in_window]] = True
    caused = np.zeros(size, dtype=bool)
    caused[events.who[events.kind == "purchase"]] = True
    base, treated = natural.mean(), (natural | caused).mean()
    assert abs(base - 0.05) < 0.003
    assert abs((treated - base) - 0.02) < 0.003
    assert not (natural & caused).any()  # the effect adds only to those who would not buy


def test_messages_at_the_preferred_hour_are_opened_more_often() -> None:
    behaviour = Behaviour()
    size = 50_000
    people = _population(size, behaviour)
    responder = Responder(people, behaviour, {}, seed=5)

    def open_rate(hour_of: np.ndarray) -> float:
        rates = []
        for hour in range(24):
            chosen = np.flatnonzero(hour_of == hour)
            if not len(chosen):
                continue
            sent = Sent(
                outbox_id=chosen.astype(np.int64),
                who=chosen.astype(np.int64),
                planned_at=np.full(len(chosen), _START, dtype=np.int64),
                sent_at=_START + hour * 3_600_000_000,
                goal=[None] * len(chosen),
                window=np.zeros(len(chosen), dtype=np.int64),
            )
            events = responder.respond(sent, np.zeros(1, dtype=np.int64))
            rates.append(np.sum(events.kind == "message_opened"))
        return float(sum(rates)) / size

    at_preferred = open_rate(people.preferred_hour)
    at_ten = open_rate(np.full(size, 10))
    assert at_preferred > at_ten + 0.05
    assert abs(at_preferred - behaviour.open_rate) < 0.01


async def test_a_short_simulation_delivers_to_files_and_never_to_control(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"settings_file": DEFAULT_SETTINGS_FILE})
    spec = SimulationSpec(
        customers=120, days=4, seed=2, behaviour=Behaviour(effect=0.3), tick=timedelta(hours=3)
    )
    report = await run_simulation(store, settings, spec, tmp_path / "out")
    async with store.reading() as session:
        outbox = (
            await session.execute(
                select(OutboxMessage.id, OutboxMessage.customer_id, OutboxMessage.state)
            )
        ).all()
        answered = (
            await session.execute(
                select(Event.properties).where(
                    Event.type.in_(("message_opened", "message_clicked"))
                )
            )
        ).scalars()
        answered_ids = {document["outbox_id"] for document in answered}
    sent = {row_id for row_id, _, state in outbox if state == "sent"}
    control = {row_id for row_id, _, state in outbox if state == "control"}
    assert sent and control
    written = [
        json.loads(line)
        for path in (tmp_path / "out").glob("messages-*.jsonl")
        for line in path.read_text(encoding="utf-8").splitlines()
    ]
    assert sorted(message["outbox_id"] for message in written) == sorted(sent)
    assert not {message["outbox_id"] for message in written} & control
    assert answered_ids and answered_ids <= sent  # only delivered messages are opened
    assert report.messages_sent == len(sent)
    assert sum(report.stages.values()) == 120
    assert {result.name for result in report.campaigns} >= {"registered-first-purchase"}


def test_the_same_seed_draws_the_same_customers_and_answers() -> None:
    behaviour = Behaviour()

    def answers(seed: int) -> tuple[np.ndarray, ...]:
        people = _population(500, behaviour, seed)
        background = background_events(people, _START, _START + 20 * _DAY, seed)
        sent = Sent(
            outbox_id=np.arange(500, dtype=np.int64),
            who=np.arange(500, dtype=np.int64),
            planned_at=np.full(500, _START + _DAY, dtype=np.int64),
            sent_at=_START + _DAY + 3_600_000_000,
            goal=["purchase"] * 500,
            window=np.full(500, 7 * _DAY, dtype=np.int64),
        )
        events = Responder(people, behaviour, background, seed).respond(
            sent, np.zeros(1, dtype=np.int64)
        )
        return (people.preferred_hour, *background["purchase"][:2], events.who, events.at)

    first, again, other = answers(7), answers(7), answers(8)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0], other[0])


@pytest.mark.slow
def test_the_command_prints_the_same_json_for_the_same_seed(
    database_url: str, tmp_path: Path
) -> None:
    """The same seed gives the same report on a fresh SQLite file and on the given
    database (SQLite or PostgreSQL)."""
    runner = CliRunner()
    outputs = []
    for run, url in (("fresh", []), ("given", ["--database-url", database_url])):
        arguments = ["simulate", "--days", "3", "--customers", "80", "--seed", "4"]
        arguments += ["--tick-minutes", "180"]
        arguments += ["--dir", str(tmp_path / run), "--format", "json", *url]
        result = runner.invoke(cli, arguments, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        outputs.append(json.loads(result.output))
    assert outputs[0] == outputs[1]
    assert outputs[0]["customers"] == 80 and outputs[0]["messages_sent"] > 0
