"""Uplift against control: what a campaign's messages added to its goal, with its error.

For a treated arm of ``n_t`` members of whom ``x_t`` converted and a control arm of
``n_c`` with ``x_c`` (see :mod:`core.measure.goals`):

- **rates** ``p_t = x_t / n_t`` and ``p_c = x_c / n_c``; **absolute uplift** ``p_t - p_c``
  and **relative uplift** ``p_t / p_c - 1``;
- the absolute uplift's 95% interval is **Newcombe's hybrid score interval** (his method
  10, 1998), built from each arm's Wilson interval. The Wald interval
  ``d +- z * se`` is the textbook one, but control groups are small (10% of an
  audience) and goal rates often a few percent, where Wald's coverage falls well below
  95% and its bounds can leave [-1, 1]; Newcombe's stays close to 95% there and needs
  no continuity correction;
- the relative uplift's interval is the log risk ratio's (Katz), none when an arm has
  no conversions;
- the **p-value** is the two-sided two-proportion z-test with the pooled rate (the
  chi-square test of the 2x2 table, without continuity correction). Test and interval
  come from different approximations, so at the edge of significance one may say 0.049
  while the other just touches zero;
- **incremental conversions** ``(p_t - p_c) * n_t``: conversions the treated arm would
  not have had without the messages (with the interval scaled the same way), and
  **incremental revenue** likewise from the revenue per member of each arm.

The estimate is per member, and members are (run, customer) pairs: a customer in many
runs of one campaign stays in the same arm (the control hash), so the members are not
quite independent and the interval is a little too narrow for campaigns that reach the
same people again and again.

Below ``min_sample_per_arm`` members in either arm the result is "not enough data"
with no figure; a campaign keeping no control group is "no control group, uplift
unknown", never a guess.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from statistics import NormalDist

from core.measure.goals import Arm, CampaignGoal, RunGoal

CONFIDENCE = 0.95
SIGNIFICANCE = 1 - CONFIDENCE
_Z = NormalDist().inv_cdf(1 - SIGNIFICANCE / 2)


class Verdict(StrEnum):
    """What the figures say, as reports print it."""

    UPLIFT = "uplift"
    NEGATIVE = "negative uplift"
    NO_DIFFERENCE = "not significant"
    NOT_ENOUGH_DATA = "not enough data"
    NO_CONTROL = "no control group, uplift unknown"
    NO_GOAL = "no goal, uplift unknown"
    OPEN = "window open"
    NO_RUNS = "no runs yet"


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


@dataclass(frozen=True)
class Estimate:
    """Uplift of one treated arm over one control arm; figures are None when the verdict
    gives none (not enough data, no control group)."""

    treated: Arm
    control: Arm
    verdict: Verdict
    treated_rate: float | None = None
    control_rate: float | None = None
    absolute: float | None = None
    absolute_interval: Interval | None = None
    relative: float | None = None
    relative_interval: Interval | None = None
    p_value: float | None = None
    incremental_conversions: float | None = None
    incremental_interval: Interval | None = None
    incremental_revenue: float | None = None


def estimate(treated: Arm, control: Arm, min_sample_per_arm: int) -> Estimate:
    """The uplift of ``treated`` over ``control``; "not enough data" below the sample."""
    if min(treated.members, control.members) < min_sample_per_arm:
        return Estimate(treated, control, Verdict.NOT_ENOUGH_DATA)
    x_t, n_t, x_c, n_c = treated.converted, treated.members, control.converted, control.members
    p_t, p_c = x_t / n_t, x_c / n_c
    difference = p_t - p_c
    interval = newcombe_interval(x_t, n_t, x_c, n_c)
    p_value = two_proportion_p_value(x_t, n_t, x_c, n_c)
    if p_value < SIGNIFICANCE:
        verdict = Verdict.UPLIFT if difference > 0 else Verdict.NEGATIVE
    else:
        verdict = Verdict.NO_DIFFERENCE
    revenue = None
    if treated.revenue is not None and control.revenue is not None:
        revenue = (treated.revenue / n_t - control.revenue / n_c) * n_t
    return Estimate(
        treated,
        control,
        verdict,
        treated_rate=p_t,
        control_rate=p_c,
        absolute=difference,
        absolute_interval=interval,
        relative=difference / p_c if p_c > 0 else None,
        relative_interval=relative_interval(x_t, n_t, x_c, n_c),
        p_value=p_value,
        incremental_conversions=difference * n_t,
        incremental_interval=Interval(interval.low * n_t, interval.high * n_t),
        incremental_revenue=revenue,
    )


def wilson_interval(converted: int, members: int, z: float = _Z) -> Interval:
    """The Wilson score interval of a proportion ``converted / members`` (members > 0)."""
    p = converted / members
    centre = p + z * z / (2 * members)
    spread = z * math.sqrt(p * (1 - p) / members + z * z / (4 * members * members))
    scale = 1 + z * z / members
    return Interval(max(0.0, (centre - spread) / scale), min(1.0, (centre + spread) / scale))


def newcombe_interval(x_t: int, n_t: int, x_c: int, n_c: int, z: float = _Z) -> Interval:
    """Newcombe's hybrid score interval of ``x_t/n_t - x_c/n_c``."""
    p_t, p_c = x_t / n_t, x_c / n_c
    t, c = wilson_interval(x_t, n_t, z), wilson_interval(x_c, n_c, z)
    difference = p_t - p_c
    return Interval(
        difference - math.sqrt((p_t - t.low) ** 2 + (c.high - p_c) ** 2),
        difference + math.sqrt((t.high - p_t) ** 2 + (p_c - c.low) ** 2),
    )


def two_proportion_p_value(x_t: int, n_t: int, x_c: int, n_c: int) -> float:
    """Two-sided p-value of the pooled two-proportion z-test; 1 when both arms agree
    trivially (no conversions anywhere, or conversions everywhere)."""
    pooled = (x_t + x_c) / (n_t + n_c)
    variance = pooled * (1 - pooled) * (1 / n_t + 1 / n_c)
    if variance == 0:
        return 1.0
    z = (x_t / n_t - x_c / n_c) / math.sqrt(variance)
    return math.erfc(abs(z) / math.sqrt(2))  # 2 * P(Z > |z|)


def relative_interval(x_t: int, n_t: int, x_c: int, n_c: int, z: float = _Z) -> Interval | None:
    """The interval of ``p_t / p_c - 1`` from the log risk ratio (Katz); None when an arm
    has no conversions (the log is unbounded)."""
    if x_t == 0 or x_c == 0:
        return None
    log_ratio = math.log((x_t / n_t) / (x_c / n_c))
    spread = z * math.sqrt(1 / x_t - 1 / n_t + 1 / x_c - 1 / n_c)
    return Interval(math.exp(log_ratio - spread) - 1, math.exp(log_ratio + spread) - 1)


@dataclass(frozen=True)
class RunUplift:
    """One run's arms and uplift; an open run's estimate is "window open"."""

    run: RunGoal
    estimate: Estimate


@dataclass(frozen=True)
class CampaignUplift:
    """A campaign's uplift over its final runs, with each run's."""

    measured: CampaignGoal
    estimate: Estimate
    runs: list[RunUplift]

    @property
    def name(self) -> str:
        return self.measured.name

    @property
    def next_close(self) -> datetime | None:
        """When the earliest open run's goal window closes (None: no open run)."""
        closing = [run.closes_at for run in self.measured.open_runs if run.closes_at]
        return min(closing, default=None)


def campaign_uplift(measured: CampaignGoal, min_sample_per_arm: int) -> CampaignUplift:
    """The uplift of ``measured``'s final runs together and of each run on its own."""
    runs = [
        RunUplift(run, _judge(measured, [run], run.final, min_sample_per_arm))
        for run in measured.runs
    ]
    final = measured.final_runs
    overall = _judge(measured, final, bool(final), min_sample_per_arm)
    return CampaignUplift(measured, overall, runs)


def _judge(
    measured: CampaignGoal, runs: list[RunGoal], final: bool, min_sample_per_arm: int
) -> Estimate:
    treated = sum((run.treated for run in runs), Arm())
    control = sum((run.control for run in runs), Arm())
    if measured.goal is None:
        return Estimate(treated, control, Verdict.NO_GOAL)
    if control.members == 0 and measured.control_percent == 0:
        return Estimate(treated, control, Verdict.NO_CONTROL)
    if not measured.runs:
        return Estimate(treated, control, Verdict.NO_RUNS)
    if not final:
        return Estimate(treated, control, Verdict.OPEN)
    return estimate(treated, control, min_sample_per_arm)
