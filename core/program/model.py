"""The shapes of the program files, as strict pydantic models.

Unknown keys are errors (a typo must not silently drop a setting); names
are short lowercase identifiers because rules, the CLI and the console refer
to them.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    field_validator,
    model_serializer,
    model_validator,
)

from core.durations import DURATION_FORMAT, parse_duration
from core.program.schedules import SCHEDULE_FORMAT

Name = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,63}$")]
SegmentName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,127}$")]
ParamValue = float | int | str | bool


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


STAGE_KPIS = ("coverage", "conversion", "revenue_per_customer", "churn")
"""What a stage's KPI targets may name (see :mod:`core.measure.stages`)."""
STAGE_KPI_KEY = re.compile(rf"(?P<kpi>{'|'.join(STAGE_KPIS)})_(?P<days>[1-9][0-9]{{0,2}})d")
"""A stage KPI target's key: the KPI and the window it is measured over, ``coverage_30d``."""


class StageSpec(_Spec):
    """One lifecycle stage: who is in it (``rule``) and what campaigns aimed at it are for."""

    name: Name
    rule: str
    objective: str
    description: str | None = None
    kpi: dict[str, float] = Field(default_factory=dict)
    """Targets: a KPI of :data:`STAGE_KPIS` with its window in days (``coverage_30d = 0.9``)."""
    dormant: bool = False
    """Leaving this stage sets ``reactivated_at`` (at most one stage is dormant)."""
    comeback_gap_days: float | str | None = None
    """For the dormant stage: days without activity (a number or a param name) that make a
    later event a comeback. Customers placed for the first time get ``reactivated_at`` from
    their history: their last event after such a gap."""
    fallback: bool = False
    """Customers no stage rule matches go here (exactly one stage is the fallback)."""

    @field_validator("kpi")
    @classmethod
    def _known_kpis(cls, targets: dict[str, float]) -> dict[str, float]:
        for key, target in targets.items():
            known = STAGE_KPI_KEY.fullmatch(key)
            if known is None:
                raise ValueError(
                    f"unknown KPI `{key}`: a stage KPI is one of {', '.join(STAGE_KPIS)}, "
                    "followed by its window in days, e.g. coverage_30d"
                )
            if target < 0 or (known["kpi"] != "revenue_per_customer" and target > 1):
                raise ValueError(f"`{key}` is a share: a number from 0 to 1, not {target}")
        return targets


class SegmentSpec(_Spec):
    """A target group: a rule, optionally within one stage, with tags for browsing."""

    name: SegmentName
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


Share = Annotated[float, Field(ge=0, le=1)]


class ProgramKpiSpec(_Spec):
    """Program-wide KPI targets (``[program] kpi = {...}`` in ``stages.toml``); see
    :mod:`core.measure.programme` for how each is measured."""

    automated_share: Share = 0.85
    """At least this share of the messages sent come from automated campaigns."""
    messages_per_customer_week: float | None = Field(None, gt=0)
    """At most this many messages a customer a week, on average."""
    opt_out_rate: Share | None = None
    """At most this many opt-outs per message sent."""
    complaint_rate: Share | None = None
    bounce_rate: Share | None = None


class ProgramSpec(_Spec):
    """The ``[program]`` table of ``stages.toml``: what holds for the program as a whole."""

    kpi: ProgramKpiSpec = ProgramKpiSpec()


def _duration(text: str) -> str:
    duration = parse_duration(text)
    if (duration is not None and duration <= timedelta(0)) or (
        duration is None and text.startswith("-") and parse_duration(text[1:]) is not None
    ):
        raise ValueError(f"must be longer than zero, e.g. 7d, not {text!r}")
    if duration is None:
        raise ValueError(f"must be {DURATION_FORMAT}, not {text!r}")
    return text


Duration = Annotated[str, AfterValidator(_duration)]
"""A positive duration as written in the file; :func:`core.durations.parse_duration` reads it."""
CampaignKind = Literal["cycle", "ad_hoc", "triggered", "journey"]
CAMPAIGN_KINDS: tuple[str, ...] = get_args(CampaignKind)
Channel = Literal["email", "sms", "webhook", "in_app", "file"]
CHANNEL_NAMES: tuple[str, ...] = get_args(Channel)
PREFERRED = "preferred"
"""A campaign's ``channel`` meaning: each customer's preferred one among its ``channels``."""
SendTime = Literal["now", "best"]
SEND_TIMES: tuple[str, ...] = get_args(SendTime)


class TargetSpec(_Spec):
    """Who a campaign is for: a stage, a segment or both, narrowed by an optional rule."""

    stage: Name | None = None
    segment: SegmentName | None = None
    rule: str | None = None

    @model_validator(mode="after")
    def _aims_somewhere(self) -> TargetSpec:
        if self.stage is None and self.segment is None:
            raise ValueError("needs a `stage`, a `segment` or both")
        return self


GoalValue = Literal["revenue"]


class GoalSpec(_Spec):
    """What counts as the campaign working: an event of this type within the window after
    the run (only the events ``event_rule`` matches, when it has one), and optionally what
    such an event is worth."""

    event: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_.:-]{0,63}$")]
    within: Duration
    event_rule: str | None = None
    """A rule on the goal event: ``value``, ``source``, ``occurred_at`` and ``attr("property")``."""
    value: GoalValue | None = None
    """``revenue``: the goal events' ``value`` summed, so uplift shows incremental revenue."""

    @model_serializer(mode="wrap")
    def _without_unset_options(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Goals written before the options existed keep their stored form, hence the
        # digests of their campaigns: an unchanged file must not read as a changed campaign.
        data: dict[str, Any] = handler(self)
        for option in ("event_rule", "value"):
            if data.get(option) is None:
                data.pop(option, None)
        return data


DateTriggerKind = Literal["birthday", "first_purchase_anniversary"]
_LOCAL_TIME = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


class TriggerSpec(_Spec):
    """What sends a triggered campaign: an event of type ``event`` (with a rule on the event
    and one on the customer), or a ``date`` of the customer's, at ``send_at`` their time."""

    event: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_.:-]{0,63}$")] | None = None
    event_rule: str | None = None
    """A rule on the event: ``value``, ``source``, ``occurred_at`` and ``attr("property")``."""
    customer_rule: str | None = None
    """A rule on the customer, read when the event arrives (or on the date)."""
    date: DateTriggerKind | None = None
    send_at: Annotated[str, StringConstraints(pattern=_LOCAL_TIME)] = "10:00"
    """Date triggers: the local time (HH:MM, the customer's time zone) the message goes."""

    @model_validator(mode="after")
    def _event_or_date(self) -> TriggerSpec:
        if (self.event is None) == (self.date is None):
            raise ValueError("needs exactly one of `event` or `date`")
        if self.date is not None and self.event_rule is not None:
            raise ValueError("an `event_rule` needs an `event` trigger, not a date one")
        return self

    @property
    def local_time(self) -> tuple[int, int]:
        """``send_at`` as (hour, minute)."""
        hour, minute = self.send_at.split(":")
        return int(hour), int(minute)


class CampaignSpec(_Spec):
    """A campaign: who it targets, what it sends on which channel, and how often."""

    name: SegmentName
    description: str | None = None
    kind: CampaignKind
    target: TargetSpec | None = None
    """Needed but for triggered campaigns, which reach whom their trigger matches (narrowed
    by the target when they have one)."""
    channel: Literal[Channel, "preferred"]
    """The channel, or ``preferred``: each customer's preferred channel (see
    :mod:`core.intel.channel_preference`) when it is one of ``channels``, else the first of
    ``channels`` the customer may be sent on."""
    channels: list[Channel] | None = None
    """With ``channel = "preferred"``: the channels to choose from, in fallback order (every
    variant needs templates for each)."""
    send_time: SendTime = "now"
    """``now``: when the run is planned; ``best``: at each customer's best hour (see
    :mod:`core.intel.send_time`) in their time zone, within the next 24 hours. Quiet hours
    hold marketing either way."""
    variants: list[Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]] = (
        Field(min_length=1)
    )
    """Template names, rotated between runs (see ``templates_dir``)."""
    priority: int = Field(50, ge=0, le=1000)
    """When campaigns compete for a customer, the higher priority wins."""
    category: Literal["marketing", "transactional"] = "marketing"
    goal: GoalSpec | None = None
    control: float = Field(10.0, ge=0, le=100)
    """Percentage of the audience kept as a control group, never sent this campaign."""
    cooldown: Duration | None = None
    """The same campaign reaches a customer at most once per cooldown."""
    schedule: str | None = None
    """Cycles only: cron (minute hour day month weekday) in the program's time zone, or an
    interval (``every 2w``) counted from when the campaign was applied."""
    status: Literal["active", "paused", "archived"] = "active"
    trigger: TriggerSpec | None = None
    """Triggered campaigns only: the event or date that sends the campaign."""

    @field_validator("send_time", mode="before")
    @classmethod
    def _known_send_time(cls, value: object) -> object:
        if value not in SEND_TIMES:
            raise ValueError(
                f'must be "now" (when the run is planned) or "best" (each customer\'s best '
                f"hour within the next 24 hours, in their time zone), not {value!r}"
            )
        return value

    @model_validator(mode="after")
    def _channels_fit_channel(self) -> CampaignSpec:
        if self.channel == PREFERRED and not self.channels:
            raise ValueError(
                'a `channel = "preferred"` campaign needs `channels`, the channels to choose '
                'from in fallback order, e.g. channels = ["email", "sms"]'
            )
        if self.channel != PREFERRED and self.channels is not None:
            raise ValueError(
                f'`channels` is for `channel = "preferred"`; this campaign sends on '
                f"`{self.channel}` only"
            )
        if self.channels is not None and len(set(self.channels)) < len(self.channels):
            raise ValueError("`channels` names a channel twice")
        return self

    @model_validator(mode="after")
    def _send_time_fits(self) -> CampaignSpec:
        if self.send_time != "best":
            return self
        if self.category == "transactional":
            raise ValueError(
                'a transactional message goes at once: `send_time = "best"` is for marketing'
            )
        if self.trigger is not None and self.trigger.date is not None:
            raise ValueError(
                'a date trigger sends at its `send_at` local time, not at `send_time = "best"`'
            )
        return self

    @property
    def channel_choices(self) -> tuple[str, ...]:
        """The channels the campaign's messages may go on, in fallback order."""
        if self.channel == PREFERRED:
            assert self.channels is not None
            return tuple(self.channels)
        return (self.channel,)

    @model_validator(mode="after")
    def _schedule_fits_kind(self) -> CampaignSpec:
        if self.kind == "cycle" and self.schedule is None:
            raise ValueError(f"a cycle campaign needs a `schedule`: {SCHEDULE_FORMAT}")
        if self.kind != "cycle" and self.schedule is not None:
            raise ValueError(f"only cycle campaigns have a `schedule`, not {self.kind} ones")
        return self

    @model_validator(mode="after")
    def _trigger_fits_kind(self) -> CampaignSpec:
        if self.kind == "triggered" and self.trigger is None:
            raise ValueError(
                'a triggered campaign needs a `trigger`, e.g. trigger = { event = "purchase" } '
                'or trigger = { date = "birthday" }'
            )
        if self.kind != "triggered" and self.trigger is not None:
            raise ValueError(f"only triggered campaigns have a `trigger`, not {self.kind} ones")
        if self.kind != "triggered" and self.target is None:
            raise ValueError("needs a `target`: a `stage`, a `segment` or both")
        return self


EventType = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_.:-]{0,63}$")]
StepId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,39}$")]
"""A journey step's id; short, because it becomes part of the step's campaign name."""
TemplateName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
EXIT_TARGET = "exit"
"""The step target that ends a customer's pass through the journey as exited."""
COMPLETE_TARGET = "complete"
"""The step target that ends a customer's pass as completed (also: running off the end)."""
STEP_KINDS = ("send", "wait", "wait_until", "branch", "exit")
_STEP_TARGETS = {
    "send": ("next",),
    "wait": ("next",),
    "wait_until": ("on_event", "on_timeout"),
    "branch": ("on_true", "on_false"),
    "exit": (),
}
"""The target fields each kind of step has; ``next`` defaults to the following step."""


class JourneyEntrySpec(_Spec):
    """What starts a pass through a journey: exactly one of an event, a segment or a stage
    entered after the journey was first ticked."""

    event: EventType | None = None
    segment: SegmentName | None = None
    stage: Name | None = None

    @model_validator(mode="after")
    def _one_trigger(self) -> JourneyEntrySpec:
        given = [name for name in ("event", "segment", "stage") if getattr(self, name)]
        if len(given) != 1:
            raise ValueError("needs exactly one of `event`, `segment` or `stage`")
        return self


class ExitGoalSpec(_Spec):
    """What ends a pass early as reached: an event after the entry, a customer rule, or both."""

    event: EventType | None = None
    rule: str | None = None

    @model_validator(mode="after")
    def _says_something(self) -> ExitGoalSpec:
        if self.event is None and self.rule is None:
            raise ValueError("needs an `event`, a `rule` or both")
        return self


class ReentrySpec(_Spec):
    """Whether a customer whose pass ended may enter again. Without it, a customer goes
    through the journey once."""

    after: Duration | None = None
    """At least this long after the previous entry; none: as soon as the previous pass ended."""
    max_entries: int | None = Field(None, ge=2)
    """At most this many passes in all; none: no limit."""


class WaitUntilSpec(_Spec):
    """Wait for an event of type ``event`` for at most ``timeout``."""

    event: EventType
    timeout: Duration
    of_step: StepId | None = None
    """Only events about the message of this send step count (``message_opened`` of it)."""


class StepSpec(_Spec):
    """One step: exactly one of ``send``, ``wait``, ``wait_until``, ``branch`` or ``exit``,
    with the targets its kind has (a step id, ``exit`` or ``complete``)."""

    id: StepId | None = None
    """Defaults to ``step-N`` (N counting from 1); needed to be a target."""
    send: TemplateName | None = None
    channel: Channel | None = None
    """For ``send``: the channel; e-mail by default."""
    wait: Duration | None = None
    wait_until: WaitUntilSpec | None = None
    branch: str | None = None
    """A customer rule: true goes to ``on_true``, false (or unknown) to ``on_false``."""
    exit: str | None = None
    """Ends the pass as exited, with this as the exit reason."""
    next: StepId | None = None
    on_event: StepId | None = None
    on_timeout: StepId | None = None
    on_true: StepId | None = None
    on_false: StepId | None = None

    @model_validator(mode="after")
    def _one_kind_and_its_targets(self) -> StepSpec:
        kinds = [kind for kind in STEP_KINDS if getattr(self, kind) is not None]
        if len(kinds) != 1:
            raise ValueError(f"needs exactly one of {', '.join(f'`{k}`' for k in STEP_KINDS)}")
        kind = kinds[0]
        if self.channel is not None and kind != "send":
            raise ValueError("only a `send` step has a `channel`")
        allowed = _STEP_TARGETS[kind]
        foreign = [
            name
            for targets in _STEP_TARGETS.values()
            for name in targets
            if name not in allowed and getattr(self, name) is not None
        ]
        if foreign:
            raise ValueError(f"a `{kind}` step has no `{foreign[0]}`")
        return self

    @property
    def kind(self) -> str:
        return next(kind for kind in STEP_KINDS if getattr(self, kind) is not None)

    def targets(self) -> dict[str, str | None]:
        """The step's target fields by name (``next`` None: the following step)."""
        return {name: getattr(self, name) for name in _STEP_TARGETS[self.kind]}


class JourneySpec(_Spec):
    """A multi-step flow: who enters, the steps they go through, and what ends it early."""

    name: Name
    description: str | None = None
    entry: JourneyEntrySpec
    exit_goal: ExitGoalSpec | None = None
    reentry: ReentrySpec | None = None
    steps: list[StepSpec] = Field(min_length=1)
    priority: int = Field(50, ge=0, le=1000)
    """The priority of the journey's messages when they compete with others in a tick."""
    control: float = Field(10.0, ge=0, le=100)
    """Percentage kept as a control group at each send step, never sent that message."""
    status: Literal["active", "paused"] = "active"
    """A paused journey enrols nobody and moves nobody until it is active again."""
