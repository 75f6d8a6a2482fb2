"""How simulated customers behave: when they look at their mail, what they open, click and
buy, and what a campaign's message adds to that.

Every customer gets, from the seed alone, a preferred local hour (when they read their
mail), a login rate (from their demo persona) and the same base purchase rate. Around
the messages they receive:

- **opens**: a message sent at the customer's preferred hour is opened with chance
  ``open_rate``; the further the local send hour is from it, the lower the chance (a
  Gaussian in the circular hour distance, never below ``off_hour_share`` of it). The
  open happens at the next preferred hour, so open history shows when people read;
- **clicks**: a share ``click_rate`` of the opens, minutes later;
- **the true effect**: a customer who *received* a campaign's message reaches the
  campaign's goal (an event type within a window after the run) with a chance exactly
  ``effect`` higher than untreated: if their background behaviour has no goal event in
  the window, the message causes one with chance ``effect / P(none in the window)``.
  Control members never receive anything, so they never get the effect. The effect is
  per message: a campaign whose cooldown is shorter than its goal window (the default
  ``registered-first-purchase``: 7 days, 30-day goal) reaches its treated customers
  again inside the window, so its uplift per run is larger than ``effect``; campaigns
  whose cooldown covers their window show ``effect`` itself.

Background behaviour (logins and purchases as Poisson processes) is drawn for the whole
simulated period at once; everything is arrays, one vectorised step per batch of
messages, never a loop per customer per hour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from core.demo_data import PERSONAS

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

_HOUR_MICROS = 3_600_000_000
_DAY_MICROS = 24 * _HOUR_MICROS
_PREFERRED_HOURS = np.array([7, 8, 9, 12, 13, 17, 18, 19, 20], dtype=np.int64)
"""Local hours people read their mail at, each customer one of them (outside quiet hours)."""
_QUIET_PERSONAS = ("lapsed",)
"""Personas that stay away during the simulation (their history already went quiet)."""
_LOGINS_PER_WEEK = {persona.name: persona.logins_per_week for persona in PERSONAS}


@dataclass(frozen=True)
class Behaviour:
    """The knobs of the simulated customers (probabilities per customer)."""

    base_rate: float = 0.05
    """Chance that a customer buys within any 7 days, untreated."""
    effect: float = 0.02
    """The true effect of every campaign: absolute uplift of the chance of its goal."""
    open_rate: float = 0.45
    """Chance of opening a message that arrives at the customer's preferred hour."""
    off_hour_share: float = 0.35
    """The share of ``open_rate`` left for a message sent at the opposite hour."""
    hour_spread: float = 2.0
    """How many hours from the preferred one the open chance takes to fall off (sigma)."""
    click_rate: float = 0.25
    """Chance that an opened message is clicked."""

    @property
    def purchases_per_day(self) -> float:
        return -math.log(1.0 - self.base_rate) / 7.0


@dataclass(frozen=True)
class Population:
    """The simulated customers, one position each (in customer id order)."""

    ids: IntArray
    """The store's customer ids."""
    zones: list[str]
    """Distinct time zone names; ``zone`` indexes this list."""
    zone: IntArray
    preferred_hour: IntArray
    """The local hour each customer reads their mail at."""
    rates: dict[str, FloatArray]
    """Background events per day, by event type."""

    def positions(self, customer_ids: IntArray) -> IntArray:
        """Positions of the store's ``customer_ids`` (all known customers)."""
        found: IntArray = np.searchsorted(self.ids, customer_ids)
        return found


def make_population(
    ids: list[int], zones: list[str], personas: list[str], behaviour: Behaviour, seed: int
) -> Population:
    """Customers ``ids`` (ascending) with their time zones and personas, behaviour drawn
    from ``seed``."""
    rng = np.random.default_rng([seed, 1])
    names = sorted(set(zones))
    zone = np.array([names.index(name) for name in zones], dtype=np.int64)
    preferred = rng.choice(_PREFERRED_HOURS, size=len(ids))
    logins = np.array(
        [
            0.0 if persona in _QUIET_PERSONAS else _LOGINS_PER_WEEK.get(persona, 1.0) / 7.0
            for persona in personas
        ]
    )
    purchases = np.full(len(ids), behaviour.purchases_per_day)
    return Population(
        np.array(ids, dtype=np.int64),
        names,
        zone,
        preferred,
        {"login": logins, "purchase": purchases},
    )


StrArray = npt.NDArray[np.str_]


@dataclass(frozen=True)
class Events:
    """Events as arrays, in time order: who (position), what (type), when (epoch micros),
    value (NaN for none), and the message they answer (-1 for none)."""

    who: IntArray
    kind: StrArray
    at: IntArray
    value: FloatArray
    outbox_id: IntArray

    @classmethod
    def sorted(
        cls, who: IntArray, kind: StrArray, at: IntArray, value: FloatArray, outbox_id: IntArray
    ) -> Events:
        """The events given, put in time order (ties keep their order)."""
        order = np.argsort(at, kind="stable")
        return cls(who[order], kind[order], at[order], value[order], outbox_id[order])

    def split(self, until: int) -> tuple[Events, Events]:
        """The events dated up to ``until``, and the later ones (views, no copies)."""
        cut = int(np.searchsorted(self.at, until, side="right"))
        return self._slice(slice(None, cut)), self._slice(slice(cut, None))

    def __len__(self) -> int:
        return len(self.at)

    def _slice(self, part: slice) -> Events:
        return Events(
            self.who[part], self.kind[part], self.at[part], self.value[part], self.outbox_id[part]
        )


def background_events(
    population: Population, start: int, end: int, seed: int
) -> dict[str, tuple[IntArray, IntArray, FloatArray]]:
    """Per event type, the (position, time, value) of every background event in
    ``[start, end)`` (epoch micros), sorted by position then time."""
    rng = np.random.default_rng([seed, 2])
    days = (end - start) / _DAY_MICROS
    drawn: dict[str, tuple[IntArray, IntArray, FloatArray]] = {}
    for kind in sorted(population.rates):
        counts = rng.poisson(population.rates[kind] * days)
        who = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
        at = start + (rng.random(len(who)) * (end - start)).astype(np.int64)
        value = (
            np.round(rng.lognormal(np.log(30.0), 0.5, len(who)), 2)
            if kind == "purchase"
            else np.full(len(who), np.nan)
        )
        order = np.lexsort((at, who))
        drawn[kind] = (who[order], at[order], value[order])
    return drawn


@dataclass(frozen=True)
class Sent:
    """Messages just delivered: outbox id, customer position, campaign, when the run was
    planned and when the message went out (epoch micros), the goal and its window."""

    outbox_id: IntArray
    who: IntArray
    planned_at: IntArray
    sent_at: int
    goal: list[str | None]
    window: IntArray
    """The goal's window in micros (0: no goal)."""


class Responder:
    """Draws the customers' answers to what they received, reproducibly from the seed."""

    def __init__(
        self,
        population: Population,
        behaviour: Behaviour,
        background: dict[str, tuple[IntArray, IntArray, FloatArray]],
        seed: int,
    ) -> None:
        self.population = population
        self.behaviour = behaviour
        self.background = background
        self._rng = np.random.default_rng([seed, 3])

    def respond(self, sent: Sent, utc_offsets: IntArray) -> Events:
        """Opens, clicks and caused goal events for ``sent``; ``utc_offsets`` holds each
        time zone's offset from UTC at the send time, in minutes."""
        behaviour = self.behaviour
        rng = self._rng
        n = len(sent.outbox_id)
        opened_at = self._open_times(sent, utc_offsets)
        opens = rng.random(n) < self._open_chance(sent, utc_offsets)
        clicks = opens & (rng.random(n) < behaviour.click_rate)
        click_at = opened_at + (rng.uniform(0.5, 10.0, n) * 60_000_000).astype(np.int64)
        caused, caused_at = self._caused_goals(sent)
        goal = np.array([goal or "" for goal in sent.goal])
        amounts = np.round(rng.lognormal(np.log(30.0), 0.5, n), 2)
        parts = [
            (opens, np.full(n, "message_opened"), opened_at, np.full(n, np.nan), sent.outbox_id),
            (clicks, np.full(n, "message_clicked"), click_at, np.full(n, np.nan), sent.outbox_id),
            # Caused goal events answer the campaign, not a message: no outbox id.
            (
                caused,
                goal,
                caused_at,
                np.where(goal == "purchase", amounts, np.nan),
                np.full(n, -1, dtype=np.int64),
            ),
        ]
        return Events.sorted(
            np.concatenate([sent.who[mask] for mask, *_ in parts]),
            np.concatenate([kind[mask] for mask, kind, *_ in parts]),
            np.concatenate([at[mask] for mask, _, at, *_ in parts]),
            np.concatenate([value[mask] for mask, _, _, value, _ in parts]),
            np.concatenate([outbox[mask] for mask, *_, outbox in parts]),
        )

    def _local_hour(self, sent: Sent, utc_offsets: IntArray) -> IntArray:
        minutes = sent.sent_at // 60_000_000 + utc_offsets[self.population.zone[sent.who]]
        hours: IntArray = (minutes // 60) % 24
        return hours

    def _open_chance(self, sent: Sent, utc_offsets: IntArray) -> FloatArray:
        behaviour = self.behaviour
        gap = np.abs(self._local_hour(sent, utc_offsets) - self.population.preferred_hour[sent.who])
        distance = np.minimum(gap, 24 - gap)
        closeness = np.exp(-(distance**2) / (2 * behaviour.hour_spread**2))
        share = behaviour.off_hour_share + (1 - behaviour.off_hour_share) * closeness
        chance: FloatArray = behaviour.open_rate * share
        return chance

    def _open_times(self, sent: Sent, utc_offsets: IntArray) -> IntArray:
        """At the next preferred local hour (this hour if it is the preferred one)."""
        n = len(sent.outbox_id)
        wait = (self.population.preferred_hour[sent.who] - self._local_hour(sent, utc_offsets)) % 24
        hour_start = sent.sent_at - sent.sent_at % _HOUR_MICROS
        minutes = (self._rng.random(n) * _HOUR_MICROS).astype(np.int64)
        at: IntArray = np.maximum(hour_start + wait * _HOUR_MICROS + minutes, sent.sent_at + 1)
        return at

    def _caused_goals(self, sent: Sent) -> tuple[npt.NDArray[np.bool_], IntArray]:
        """Which messages cause a goal event, and when (between the send and the end of
        the goal's window after the run)."""
        n = len(sent.outbox_id)
        rng = self._rng
        draw, when = rng.random(n), rng.random(n)
        window_end = sent.planned_at + sent.window
        caused = np.zeros(n, dtype=bool)
        goals = np.array([goal or "" for goal in sent.goal])
        for kind in sorted(set(goals) - {""}):
            rows = (goals == kind) & (sent.window > 0)
            natural, rate = self._natural(
                kind, sent.who[rows], sent.planned_at[rows], window_end[rows]
            )
            untouched = np.exp(-rate * sent.window[rows] / _DAY_MICROS)
            chance = np.minimum(1.0, self.behaviour.effect / np.maximum(untouched, 1e-12))
            caused[rows] = ~natural & (draw[rows] < chance)
        span = np.maximum(window_end - sent.sent_at, 1)
        caused_at = sent.sent_at + 1 + (when * (span - 1)).astype(np.int64)
        return caused, caused_at

    def _natural(
        self, kind: str, who: IntArray, low: IntArray, high: IntArray
    ) -> tuple[npt.NDArray[np.bool_], FloatArray]:
        """Whether each customer has a background ``kind`` event in ``[low, high]``, and
        their rate of such events per day."""
        rates = self.population.rates.get(kind)
        if rates is None:
            return np.zeros(len(who), dtype=bool), np.zeros(len(who))
        events_who, events_at, _ = self.background[kind]
        return any_between(events_who, events_at, who, low, high), rates[who]


def any_between(
    events_who: IntArray, events_at: IntArray, who: IntArray, low: IntArray, high: IntArray
) -> npt.NDArray[np.bool_]:
    """For each ``(who, low, high)``, whether an event of ``who`` lies in ``[low, high]``;
    the events are sorted by ``events_who`` then ``events_at``.

    As complex numbers (who real, time imaginary; exact, since times stay below 2**53)
    numpy sorts and searches the pairs in that order, so one ``searchsorted`` finds each
    customer's first event at or after ``low``.
    """
    keys = events_who + 1j * events_at.astype(np.float64)
    first = np.searchsorted(keys, who + 1j * low.astype(np.float64))
    inside = first < len(keys)
    found = np.zeros(len(who), dtype=bool)
    index = first[inside]
    found[inside] = (events_who[index] == who[inside]) & (events_at[index] <= high[inside])
    return found
