"""The customer explorer: find a customer by id, e-mail or name, read their profile, and
compare the stages' behaviour (the explorer queries of :mod:`core.explore`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar
from zoneinfo import ZoneInfo

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.widget import AwaitMount, Widget
from textual.widgets import (
    DataTable,
    Header,
    Input,
    Static,
    TabbedContent,
    TabPane,
)

from console.screens.base import StoreScreen
from console.widgets.figures import count_text, moment_text
from console.widgets.footer import KeysFooter
from console.widgets.tables import refill
from core import clock
from core.customer_profile import (
    EVENT_WINDOW,
    CustomerMatch,
    CustomerProfile,
    customer_profile,
    find_customers,
)
from core.explore import (
    BehaviourRetention,
    CategoryShare,
    StageProfile,
    behaviours_that_retain,
    category_shares,
    stage_profiles,
)

_OUTCOME_STYLES = {
    "sent": "green",
    "failed": "bold red",
    "cancelled": "yellow",
    "control": "dim",
    "retry": "yellow",
}


@dataclass(frozen=True)
class Behaviour:
    """The stage behaviour panels, as read at one moment."""

    profiles: list[StageProfile]
    categories: list[CategoryShare]
    retention: list[BehaviourRetention]


class CustomersScreen(StoreScreen):
    """Search (Enter runs it), the profile of the customer chosen from the results, and the
    per-stage behaviour panels (read when their tab is first opened: they scan a month of
    events)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "search", "Search"),
        Binding("p", "tab('profile-tab', '#profile')", "Profile"),
        Binding("b", "tab('behaviour-tab', '#behaviour')", "Stage behaviour"),
        Binding("escape", "tab('search-tab', '#matches')", "Results", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.search_text = ""
        self._matched = ""
        """The search whose results are shown."""
        self.customer_id: int | None = None
        self._behaviour_wanted = False
        self._behaviour: Behaviour | None = None
        self._building: dict[str, AwaitMount] = {}
        """The tabs whose content is being mounted (or is), by pane id."""
        self._built: set[str] = set()

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(id="customer-tabs"):
            with TabPane("Search", id="search-tab"):
                yield Input(placeholder="id, e-mail or the start of a name", id="search")
                yield DataTable(id="matches", cursor_type="row", zebra_stripes=True)
                yield Static("Type and press Enter.", id="matches-note")
            # Filled the first time they are needed (see _build).
            yield TabPane("Profile", id="profile-tab")
            yield TabPane("Stage behaviour", id="behaviour-tab")
        yield KeysFooter()

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#matches", DataTable).add_columns(
            "id", "customer", "name", "e-mail", "stage"
        )
        self.query_one("#search", Input).focus()

    async def _build(self, pane: str) -> None:
        """Mount the content of tab ``pane`` unless it is there: most visits never open the
        profile or the stage behaviour, and their six tables and panels took most of the
        time it took to show the screen."""
        if pane in self._built or pane not in _TABS:
            return
        if pane not in self._building:
            self._building[pane] = self.query_one(f"#{pane}", TabPane).mount(_TABS[pane]())
        await self._building[pane]  # by this call, or by one still under way
        self._built.add(pane)

    # --- reading ----------------------------------------------------------------------

    async def load(self) -> None:
        context = self.context
        search_text, customer_id = self.search_text, self.customer_id
        now = clock.now()
        async with context.store.reading() as session:
            matches = await find_customers(session, search_text) if search_text else None
            profile = (
                await customer_profile(session, customer_id) if customer_id is not None else None
            )
            behaviour = None
            if self._behaviour_wanted and self._behaviour is None:
                dormant = context.program.dormant_stage
                behaviour = Behaviour(
                    await stage_profiles(session, now),
                    await category_shares(session, now),
                    await behaviours_that_retain(session, now, inactive_stage=dormant.name)
                    if dormant is not None
                    else [],
                )
        if matches is not None and search_text == self.search_text:
            self._show_matches(matches)
        if customer_id is not None and customer_id == self.customer_id:
            if profile is None:
                self.query_one("#profile-head", Static).update(
                    Text(f"customer #{customer_id} is not in the store any more", "red")
                )
            else:
                self._show_profile(profile)
        if behaviour is not None:
            self._behaviour = behaviour
            self._show_behaviour(behaviour)

    # --- what the operator does -------------------------------------------------------

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.search_text = event.value.strip()
        self.query_one("#matches-note", Static).update("searching...")
        self.reload()

    async def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "matches" and event.row_key.value is not None:
            self.customer_id = int(event.row_key.value)
            await self._build("profile-tab")
            self.query_one("#profile-head", Static).update("reading the profile...")
            await self.action_tab("profile-tab", "#profile")
            self.reload()

    async def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        pane = event.pane.id or ""
        await self._build(pane)
        if pane == "behaviour-tab" and not self._behaviour_wanted:
            self._behaviour_wanted = True
            self.reload()

    async def action_search(self) -> None:
        await self.action_tab("search-tab", "#search")

    async def action_tab(self, pane: str, focus: str) -> None:
        """Show tab ``pane`` with the focus on ``focus`` in it (focus left on a hidden tab
        would move back to the search field, and bring the search tab back with it)."""
        await self._build(pane)
        self.query_one(TabbedContent).active = pane
        self.query_one(focus).focus()

    # --- showing ----------------------------------------------------------------------

    def _show_matches(self, matches: list[CustomerMatch]) -> None:
        table = self.query_one("#matches", DataTable)
        refill(
            table,
            [
                (
                    str(match.id),
                    [
                        str(match.id),
                        match.external_id,
                        match.name or "-",
                        match.email or "-",
                        match.stage or "-",
                    ],
                )
                for match in matches
            ],
        )
        note = self.query_one("#matches-note", Static)
        if matches:
            note.update(f"{len(matches)} found: Enter opens the profile")
            if self._matched != self.search_text:  # a new search: go to its results
                table.focus()
        else:
            note.update(f"nobody matches {self.search_text!r}")
        self._matched = self.search_text

    def _show_profile(self, profile: CustomerProfile) -> None:
        zone = self.context.settings.zone
        self.query_one("#profile-head", Static).update(_head_text(profile, zone))
        self.query_one("#profile-scores", Static).update(_scores_text(profile, zone))
        refill(
            self.query_one("#profile-stages", DataTable),
            [
                (str(index), [moment_text(move.at, zone), move.from_stage or "-", move.to_stage])
                for index, move in enumerate(profile.history)
            ],
        )
        segments = Text()
        for index, membership in enumerate(profile.segments):
            segments.append(", " if index else "")
            segments.append(membership.segment)
            segments.append(f" since {membership.entered_at.astimezone(zone):%Y-%m-%d}", "dim")
        self.query_one("#profile-segments", Static).update(segments or Text("none", "dim"))
        refill(
            self.query_one("#profile-events", DataTable),
            [
                (
                    str(index),
                    [
                        moment_text(event.occurred_at, zone),
                        event.type,
                        "" if event.value is None else f"{event.value:,.2f}",
                        event.source,
                    ],
                )
                for index, event in enumerate(profile.events)
            ]
            or [("none", ["-", f"none in the {EVENT_WINDOW.days} days to the last", "", ""])],
        )
        refill(
            self.query_one("#profile-messages", DataTable),
            [
                (
                    str(message.id),
                    [
                        moment_text(message.sent_at or message.due_at, zone),
                        message.campaign,
                        message.channel,
                        Text(message.state, style=_OUTCOME_STYLES.get(message.state, "")),
                        (message.error or "").split("\n", 1)[0][:60],
                    ],
                )
                for message in profile.messages
            ]
            or [("none", ["-", "no messages", "", "", ""])],
        )

    def _show_behaviour(self, behaviour: Behaviour) -> None:
        refill(
            self.query_one("#stage-profiles", DataTable),
            [
                (
                    row.stage,
                    [
                        row.stage,
                        count_text(row.customers),
                        f"{row.average_active_days_30d:.1f}",
                        "-"
                        if row.average_days_to_first_purchase is None
                        else f"{row.average_days_to_first_purchase:.1f}",
                    ],
                )
                for row in behaviour.profiles
            ],
        )
        refill(
            self.query_one("#categories", DataTable),
            [
                (row.category, [row.category, count_text(row.customers), f"{row.share:.0%}"])
                for row in behaviour.categories
            ],
        )
        refill(
            self.query_one("#retention", DataTable),
            [
                (
                    row.event_type,
                    [
                        row.event_type,
                        count_text(row.customers_with),
                        f"{row.retained_with:.0%}",
                        f"{row.retained_without:.0%}",
                        "-" if row.lift is None else f"{row.lift:.2f}x",
                    ],
                )
                for row in behaviour.retention
            ],
        )


def _panel(title: str, body: Widget) -> Vertical:
    return Vertical(Static(title, classes="panel-title"), body, classes="panel")


def _table(name: str, *columns: str) -> DataTable[object]:
    """A table to read, not to move about in."""
    table: DataTable[object] = DataTable(id=name, cursor_type="none")
    table.add_columns(*columns)
    return table


def _profile_tab() -> Widget:
    return VerticalScroll(
        _panel("Customer", Static("choose one on the Search tab", id="profile-head")),
        _panel("Scores and value", Static("", id="profile-scores")),
        _panel("Stage history", _table("profile-stages", "at", "from", "to")),
        _panel("Segments", Static("", id="profile-segments")),
        _panel("Latest events", _table("profile-events", "at", "event", "value", "source")),
        _panel(
            "Messages",
            _table("profile-messages", "due / sent", "campaign", "channel", "outcome", "error"),
        ),
        id="profile",
    )


def _behaviour_tab() -> Widget:
    return VerticalScroll(
        _panel(
            "Stages (last 30 days)",
            _table("stage-profiles", "stage", "customers", "active days", "days to 1st purchase"),
        ),
        _panel(
            "Categories bought (last 90 days)", _table("categories", "category", "buyers", "share")
        ),
        _panel(
            "First-month behaviour and retention",
            _table("retention", "did in month 1", "customers", "retained", "without", "lift"),
        ),
        id="behaviour",
    )


_TABS: dict[str, Callable[[], Widget]] = {
    "profile-tab": _profile_tab,
    "behaviour-tab": _behaviour_tab,
}
"""The tabs filled when first needed, and what fills them."""


def _head_text(profile: CustomerProfile, zone: ZoneInfo) -> Text:
    customer = profile.customer
    text = Text(customer.name or "(no name)", style="bold")
    text.append(f"  {customer.external_id} (#{customer.id})\n", style="dim")
    text.append(f"e-mail {customer.email or '-'}  phone {profile.phone or '-'}\n")
    text.append(f"time zone {profile.time_zone or 'the program`s'}")
    text.append(f"  registered {moment_text(profile.registered_at, zone)}\n")
    text.append("consent ")
    for channel, given in profile.consent.items():
        style = "green" if given else "red" if given is False else "dim"
        text.append(
            f"{channel} {'yes' if given else 'no' if given is False else 'never asked'}  ", style
        )
    text.append("\nstage ", style="bold")
    text.append(customer.stage or "-", style="bold cyan")
    if profile.stage_since is not None:
        text.append(f" since {moment_text(profile.stage_since, zone)}")
    return text


def _scores_text(profile: CustomerProfile, zone: ZoneInfo) -> Text:
    text = Text()
    scores = profile.scores
    if scores is None:
        text.append("no scores yet: `cadence intel refresh` computes them\n", style="dim")
    else:
        text.append(f"RFM {scores.rfm_score or '-'}  engagement {scores.engagement_score:.1f}")
        text.append(f"  lead {scores.lead_score:.1f}\n")
        clv = "-" if scores.clv_12m is None else f"{scores.clv_12m:,.2f}"
        alive = "-" if scores.p_alive is None else f"{scores.p_alive:.0%}"
        text.append(f"CLV 12 months {clv}  P(alive) {alive}")
        expected = scores.expected_purchases_90d
        text.append(f"  purchases next 90 days {'-' if expected is None else f'{expected:.1f}'}\n")
        text.append(f"scored {moment_text(scores.refreshed_at, zone)}\n", style="dim")
    totals = profile.totals
    if totals is None:
        text.append("no events yet", style="dim")
        return text
    text.append(f"{totals.purchase_count:,} purchases, {totals.revenue_total:,.2f} in all; ")
    text.append(f"{totals.event_count:,} events\n")
    text.append(f"last purchase {_when(totals.last_purchase_at, zone)}")
    text.append(f"  last open {_when(totals.last_open_at, zone)}")
    text.append(f"  last click {_when(totals.last_click_at, zone)}")
    return text


def _when(moment: datetime | None, zone: ZoneInfo) -> str:
    return "-" if moment is None else f"{moment.astimezone(zone):%Y-%m-%d}"
