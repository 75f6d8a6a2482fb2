"""The shapes of the program files, as strict pydantic models.

Unknown keys are errors (a typo must not silently drop a setting); names
are short lowercase identifiers because rules, the CLI and the console refer
to them.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Name = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,63}$")]
ParamValue = float | int | str | bool


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StageSpec(_Spec):
    """One lifecycle stage: who is in it (``rule``) and what campaigns aimed at it are for."""

    name: Name
    rule: str
    objective: str
    description: str | None = None
    kpi: dict[str, float] = Field(default_factory=dict)
    dormant: bool = False
    """Leaving this stage sets ``reactivated_at`` (at most one stage is dormant)."""
    comeback_gap_days: float | str | None = None
    """For the dormant stage: days without activity (a number or a param name) that make a
    later event a comeback. Customers placed for the first time get ``reactivated_at`` from
    their history: their last event after such a gap."""
    fallback: bool = False
    """Customers no stage rule matches go here (exactly one stage is the fallback)."""


class SegmentSpec(_Spec):
    """A target group: a rule, optionally within one stage, with tags for browsing."""

    name: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,127}$")]
    description: str
    stage: Name | None = None
    rule: str
    tags: list[str] = Field(default_factory=list)


class DecaySpec(_Spec):
    """Points per event type that fade by half every ``half_life_days``."""

    half_life_days: float = Field(gt=0)
    points: dict[str, float]
    window_days: int = Field(365, gt=0)
    """Events older than this are left out: their points have all but faded."""


class ScoresSpec(_Spec):
    """How the engagement and lead scores weigh what customers do."""

    engagement: DecaySpec
    lead: DecaySpec
