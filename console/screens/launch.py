"""Launch: the ad-hoc campaign wizard.

The operator fills the form; a moment after each change the audience is previewed (the
planner's own tick, writing nothing) with its counts by outcome, and the message is
rendered for the sample customer. A field with a problem says so next to it, and nothing
launches until every field is right and the preview is of the form as it stands. The
launch is confirmed by typing the campaign's name; then a progress bar follows the run
as it is planned and its messages are delivered.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, Vertical
from textual.timer import Timer
from textual.widgets import Button, DataTable, Header, Input, ProgressBar, Select, Static

from console.screens.base import StoreScreen
from console.screens.confirm import TypedConfirmScreen
from console.widgets.figures import count_text, moment_text
from console.widgets.footer import KeysFooter
from core import clock
from core.errors import CadenceError, CampaignError
from core.outbox import RunDelivery, run_delivery_progress
from core.planner.launch import LaunchSpecError, launch_campaign, launch_spec, preview_spec
from core.planner.tick import RunPlan
from core.policy import Outcome
from core.program.model import CampaignSpec
from core.rules import RuleError, parse_rule
from core.templates import RenderedMessage, TemplateRenderError, available_templates, render_sample

CHANNELS = ("email", "sms", "webhook", "in_app", "file")
"""What an ad-hoc campaign may send on (``preferred`` is for the program files)."""
PREVIEW_DELAY = 0.4
"""Seconds of quiet after a keystroke before the audience is previewed again."""
POLL_SECONDS = 0.5
"""How often the progress bar reads the launched run's outbox rows."""
_SPEC_FIELDS = {"control": "control", "priority": "priority", "name": "name"}
"""Which form field a problem of :func:`launch_spec` belongs to, by the spec's field."""


@dataclass(frozen=True)
class LaunchForm:
    """A form that reads as a launch: the campaign, and when (None: now)."""

    spec: CampaignSpec
    at: datetime | None


@dataclass(frozen=True)
class Previewed:
    """A form whose audience was previewed: what the confirmation tells."""

    form: LaunchForm
    plan: RunPlan


def _field_of(spec_field: str) -> str:
    """The form field that shows a problem :func:`launch_spec` found in ``spec_field``."""
    if spec_field.startswith("target"):
        return "target"
    if spec_field.startswith("variants"):
        return "template"
    return _SPEC_FIELDS.get(spec_field, "launch")


def _field(label: str, field: Input | Select[str], problem: str | None = None) -> Vertical:
    """One row of the form: its label and the field, then the line for the problem that
    ``problem`` names (shown only when there is one)."""
    row = Horizontal(Static(label, classes="field-label"), field, classes="field-row")
    if problem is None:
        return Vertical(row, classes="field")
    return Vertical(row, _problem_line(problem), classes="field")


def _problem_line(problem: str) -> Static:
    return Static("", id=f"{problem}-problem", classes="field-problem")


class LaunchScreen(StoreScreen):
    """An ad-hoc campaign: target, message, time, control and priority, previewed live."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+l", "launch", "Launch"),
        Binding("ctrl+n", "new", "New launch"),
    ]
    FIELDS: ClassVar[tuple[str, ...]] = (
        "target",
        "rule",
        "template",
        "at",
        "control",
        "priority",
        "name",
        "launch",
    )
    """Every place a problem can show, in the form's order."""

    def __init__(self) -> None:
        super().__init__()
        self._previewed: Previewed | None = None
        """The form as last previewed without a problem: what a launch would launch."""
        self._debounce: Timer | None = None
        self._poll: Timer | None = None
        self.run_id: int | None = None
        """The launched run the progress bar follows."""
        self._no_template = "choose a template"
        """What the template field says while none is chosen (see _offer_templates)."""

    def compose(self) -> ComposeResult:
        program = self.context.program
        stages = [(stage.name, stage.name) for stage in program.stages]
        segments = [(segment.name, segment.name) for segment in program.segments]
        yield Header()
        with Grid(id="launch"):
            with Vertical(classes="panel", id="launch-form"):
                yield Static("Ad-hoc campaign", classes="panel-title")
                yield _field("stage", Select(stages, prompt="any stage", id="stage", compact=True))
                yield _field(
                    "segment",
                    Select(segments, prompt="any segment", id="segment", compact=True),
                    "target",
                )
                yield _field(
                    "rule",
                    Input(
                        placeholder="optional, e.g. consent_email == true", id="rule", compact=True
                    ),
                    "rule",
                )
                yield _field(
                    "channel",
                    Select(
                        [(c, c) for c in CHANNELS],
                        value="email",
                        allow_blank=False,
                        id="channel",
                        compact=True,
                    ),
                )
                yield _field(
                    "template",
                    Select([], prompt="template", id="template", compact=True),
                    "template",
                )
                yield _field(
                    "time",
                    Input(placeholder="now, or 2026-11-23T09:30", id="at", compact=True),
                    "at",
                )
                yield _field("control %", Input("10", id="control", compact=True), "control")
                yield _field("priority", Input("50", id="priority", compact=True), "priority")
                yield _field(
                    "name",
                    Input(placeholder="launch-SEGMENT-DATE", id="name", compact=True),
                    "name",
                )
                with Horizontal(classes="field-row"):
                    yield Button("Launch (ctrl+l)", id="launch-button", variant="warning")
                yield _problem_line("launch")
            with Vertical(classes="panel", id="audience-panel"):
                yield Static("Audience now (nothing written)", classes="panel-title")
                yield Static("choose a stage or a segment", id="audience-summary")
                yield DataTable(id="audience", cursor_type="none")
            with Vertical(classes="panel", id="message-panel"):
                yield Static("Message for a sample customer", classes="panel-title")
                yield Static("choose a template", id="message-preview")
            with Vertical(classes="panel", id="progress-panel"):
                yield Static("Delivery", classes="panel-title")
                yield ProgressBar(id="launch-progress", show_eta=False)
                yield Static("not launched yet", id="launch-status")
        yield KeysFooter()

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#audience", DataTable).add_columns("outcome", "customers")
        self._offer_templates("email")

    # --- the form -----------------------------------------------------------------------

    def _offer_templates(self, channel: str) -> None:
        """The templates that have every file ``channel`` needs, the current one kept."""
        settings = self.context.settings
        names = available_templates(channel, settings.resolve(settings.templates_dir))
        select: Select[str] = self.query_one("#template", Select)
        current = select.selection
        select.set_options([(name, name) for name in names])
        if current in names:
            select.value = current
        self._no_template = (
            "choose a template"
            if names
            else f"no template in {settings.templates_dir} has the files {channel} needs"
        )

    @on(Select.Changed)
    @on(Input.Changed)
    def _changed(self, event: Select.Changed | Input.Changed) -> None:
        if self.run_id is not None:
            return
        if isinstance(event, Select.Changed) and event.select.id == "channel":
            channel = event.value
            if isinstance(channel, str):
                self._offer_templates(channel)
        # What was previewed is not what the form says any more: no launch until it is.
        self._previewed = None
        if self._debounce is not None:
            self._debounce.stop()
        self._debounce = self.set_timer(PREVIEW_DELAY, self.reload)

    def _text(self, field: str) -> str:
        return self.query_one(f"#{field}", Input).value.strip()

    def _choice(self, field: str) -> str | None:
        select: Select[str] = self.query_one(f"#{field}", Select)
        return select.selection

    def read_form(self, now: datetime) -> tuple[LaunchForm | None, dict[str, str]]:
        """The launch the form describes, or the problem of each field that is wrong."""
        problems: dict[str, str] = {}
        stage, segment = self._choice("stage"), self._choice("segment")
        if stage is None and segment is None:
            problems["target"] = "choose a stage, a segment or both"
        rule = self._text("rule") or None
        if rule is not None:
            try:
                parse_rule(rule, params=self.context.program.params)
            except RuleError as error:
                problems["rule"] = str(error)
        template = self._choice("template")
        if template is None:
            problems["template"] = self._no_template
        control = _number(self._text("control"), float, "control", problems)
        priority = _number(self._text("priority"), int, "priority", problems)
        at = self._moment(self._text("at"), now, problems)
        if control is None or priority is None or template is None:
            return None, problems
        try:
            spec = launch_spec(
                segment=segment,
                stage=stage,
                rule=rule,
                template=template,
                channel=self._choice("channel") or "email",
                control=control,
                priority=int(priority),
                name=self._text("name") or None,
                now=now,
            )
        except LaunchSpecError as error:
            for spec_field, problem in error.fields.items():
                problems.setdefault(_field_of(spec_field), problem)
            return None, problems
        return (None if problems else LaunchForm(spec, at)), problems

    def _moment(self, text: str, now: datetime, problems: dict[str, str]) -> datetime | None:
        if text.lower() in ("", "now"):
            return None
        try:
            at = clock.parse_moment(text, self.context.settings.zone)
        except CadenceError as error:
            problems["at"] = str(error)
            return None
        if at <= now:
            problems["at"] = "that time has passed; leave it empty (or write now) to run now"
        return at

    def _show_problems(self, problems: dict[str, str]) -> None:
        for field in self.FIELDS:
            self._show_problem(field, problems.get(field, ""))

    def _show_problem(self, field: str, problem: str) -> None:
        line = self.query_one(f"#{field}-problem", Static)
        line.update(problem)
        line.display = bool(problem)

    # --- the live preview ---------------------------------------------------------------

    async def load(self) -> None:
        if self.run_id is not None:
            await self._follow_run(self.run_id)
            return
        context = self.context
        now = clock.now()
        form, problems = self.read_form(now)
        self._previewed = None
        if form is None:
            self._show_problems(problems)
            self._show_plan(None, "fix the fields marked in red to see the audience")
            return
        try:
            plan = await preview_spec(
                context.store, context.program, context.settings, form.spec, now
            )
        except CampaignError as error:  # a segment of the program files not applied yet
            problems["target"] = str(error)
            self._show_problems(problems)
            self._show_plan(None, "no audience")
            return
        if plan.targeted == 0:
            problems["target"] = "the audience is empty: choose another target or loosen the rule"
        self._show_plan(plan, None)
        message = await self._render_message(form.spec, problems)
        self._show_problems(problems)
        self._show_message(message)
        if not problems:
            self._previewed = Previewed(form, plan)

    def _show_plan(self, plan: RunPlan | None, why_none: str | None) -> None:
        table = self.query_one("#audience", DataTable)
        table.clear()
        summary = self.query_one("#audience-summary", Static)
        if plan is None:
            summary.update(Text(why_none or "", style="dim"))
            return
        sends = plan.count(Outcome.QUEUED) + plan.count(Outcome.HELD)
        summary.update(
            f"{plan.targeted:,} targeted: {sends:,} messages, "
            f"{plan.count(Outcome.CONTROL):,} control, {plan.excluded:,} left out"
        )
        for outcome in Outcome:
            if outcome is not Outcome.LOST and plan.count(outcome):
                table.add_row(outcome.key.replace("_", " "), count_text(plan.count(outcome)))
        for winner, count in sorted(plan.lost_to.items()):
            table.add_row(f"lost to {winner}", count_text(count))

    async def _render_message(
        self, spec: CampaignSpec, problems: dict[str, str]
    ) -> RenderedMessage | None:
        """The message for the sample customer; a template that fails says why next to it."""
        settings = self.context.settings
        directory = settings.resolve(settings.templates_dir)
        try:
            # Templates are compiled and rendered off the event loop: the form stays live.
            return await asyncio.to_thread(
                render_sample,
                directory,
                settings.templates,
                spec.variants[0],
                spec.channel_choices[0],
                spec.name,
            )
        except TemplateRenderError as error:
            problems["template"] = str(error)
            return None

    def _show_message(self, message: RenderedMessage | None) -> None:
        shown = Text()
        if message is not None:
            if message.subject is not None:
                shown.append("Subject: ", style="bold")
                shown.append(f"{message.subject}\n\n")
            shown.append(message.text)
        self.query_one("#message-preview", Static).update(shown)

    # --- launching ----------------------------------------------------------------------

    @on(Button.Pressed, "#launch-button")
    def _launch_pressed(self) -> None:
        self.action_launch()

    def action_launch(self) -> None:
        if self.context.read_only or self.run_id is not None:
            return
        previewed = self._previewed
        if previewed is None:
            self._show_problem(
                "launch",
                "nothing to launch yet: fix the fields marked in red, or wait for the preview",
            )
            return
        spec, plan = previewed.form.spec, previewed.plan
        when = (
            "now"
            if previewed.form.at is None
            else f"at {moment_text(previewed.form.at, self.context.settings.zone)}"
        )
        sends = plan.count(Outcome.QUEUED) + plan.count(Outcome.HELD)
        question = (
            f"Launch {spec.name} {when} on {spec.channel}: {plan.targeted:,} customers targeted, "
            f"{sends:,} messages, {plan.count(Outcome.CONTROL):,} kept as control?"
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_guarded(lambda: self._launch(previewed.form), group="action")

        self.app.push_screen(TypedConfirmScreen(question, spec.name), answered)

    async def _launch(self, form: LaunchForm) -> None:
        context = self.context
        try:
            launched = await launch_campaign(
                context.store,
                context.program,
                context.settings,
                form.spec,
                clock.now(),
                at=form.at,
                # The operator typed the name: the confirmation launch_confirm_above asks for.
                confirmed=True,
            )
        except CampaignError as error:
            self._show_problem("launch", str(error))
            return
        self.run_id = launched.run_id
        self._previewed = None
        self.query_one("#launch-form").disabled = True
        self.query_one("#progress-panel").display = True
        self.notify(f"Launched {launched.campaign}.", title="Launch")
        await self._follow_run(launched.run_id)
        self._poll = self.set_interval(POLL_SECONDS, self.reload)

    async def _follow_run(self, run_id: int) -> None:
        async with self.context.store.reading() as session:
            progress = await run_delivery_progress(session, run_id)
        self.show_progress(progress)
        if progress.finished and self._poll is not None:
            self._poll.stop()
            self._poll = None

    def show_progress(self, progress: RunDelivery) -> None:
        """The run's messages as a bar: settled (sent, failed, cancelled) of those planned."""
        bar = self.query_one("#launch-progress", ProgressBar)
        status = self.query_one("#launch-status", Static)
        if progress.status != "planned":
            bar.update(total=None)
            status.update(f"run {progress.status}: planned when its time comes")
            return
        bar.update(
            total=max(progress.messages, 1), progress=progress.settled if progress.messages else 1
        )
        states = ", ".join(f"{state} {count:,}" for state, count in sorted(progress.states.items()))
        done = "delivered" if progress.finished else "delivering"
        status.update(
            f"{done}: {progress.settled:,} of {progress.messages:,} settled ({states or 'no rows'})"
        )

    def action_new(self) -> None:
        """Leave the launched run and start a new form from this one's values."""
        if self._poll is not None:
            self._poll.stop()
            self._poll = None
        self.run_id = None
        self.query_one("#launch-form").disabled = False
        self.query_one("#progress-panel").display = False
        self.query_one("#name", Input).value = ""
        self.query_one("#launch-status", Static).update("not launched yet")
        self.query_one("#launch-progress", ProgressBar).update(total=None, progress=0)
        self.reload()


def _number(
    text: str, kind: type[int] | type[float], field: str, problems: dict[str, str]
) -> float | None:
    """``text`` read as a number of ``kind``; None, with the problem, when it is not one."""
    try:
        return kind(text)
    except ValueError:
        whole = "a whole number" if kind is int else "a number"
        problems[field] = f"{text!r} is not {whole}" if text else f"needs {whole}"
        return None
