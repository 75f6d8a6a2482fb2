"""The outbox: the latest messages with their status, filtered by state, and any one of them
opened to read it as it was sent."""

from __future__ import annotations

from typing import ClassVar
from zoneinfo import ZoneInfo

from rich.syntax import Syntax
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.widgets import DataTable, Header, Static

from console.screens.base import StoreScreen
from console.widgets.figures import moment_text
from console.widgets.footer import KeysFooter
from console.widgets.tables import highlighted_key, refill
from core.outbox_view import (
    OUTBOX_STATES,
    MessageAsSent,
    OutboxEntry,
    message_as_sent,
    recent_outbox_messages,
)
from core.templates import Templates

RECENT_MESSAGES = 200
"""How many of the latest messages the list shows."""
_STATE_STYLES = {
    "sent": "green",
    "queued": "cyan",
    "sending": "cyan",
    "retry": "yellow",
    "failed": "bold red",
    "cancelled": "yellow",
    "control": "dim",
}
_FILTERS: tuple[str | None, ...] = (None, *OUTBOX_STATES)


class OutboxScreen(StoreScreen):
    """The latest messages (campaign, customer, channel, state, due or sent, attempts,
    error); ``f`` steps through the states, Enter opens the message under the cursor."""

    LIVE: ClassVar[bool] = True
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f", "next_state", "Filter state"),
        Binding("enter", "open", "Open message", priority=True),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.state: str | None = None
        """The state shown; None for every state."""
        self._templates: Templates | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(classes="panel", id="outbox-panel"):
            yield Static("", classes="panel-title", id="outbox-title")
            yield DataTable(id="outbox", cursor_type="row", zebra_stripes=True)
        yield KeysFooter()

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#outbox", DataTable).add_columns(
            "id", "campaign", "customer", "channel", "state", "due / sent", "tries", "error"
        )
        self._show_title(None)

    async def load(self) -> None:
        state = self.state
        async with self.context.store.reading() as session:
            entries = await recent_outbox_messages(session, state=state, limit=RECENT_MESSAGES)
        if state == self.state:  # the filter did not change while this was read
            self.show(entries)

    def show(self, entries: list[OutboxEntry]) -> None:
        zone = self.context.settings.zone
        rows = [
            (
                str(entry.id),
                [
                    str(entry.id),
                    entry.campaign,
                    entry.customer,
                    entry.channel,
                    Text(entry.state, style=_STATE_STYLES.get(entry.state, "")),
                    moment_text(entry.sent_at or entry.due_at, zone),
                    str(entry.attempts),
                    (entry.error or "").split("\n", 1)[0][:80],
                ],
            )
            for entry in entries
        ]
        refill(self.query_one("#outbox", DataTable), rows)
        self._show_title(len(entries))

    def _show_title(self, shown: int | None) -> None:
        which = (
            "every state, newest first" if self.state is None else f"{self.state}, latest due first"
        )
        count = "" if shown is None else f" ({shown:,} shown)"
        self.query_one("#outbox-title", Static).update(f"Outbox: {which}{count}")

    def action_next_state(self) -> None:
        """Show the next state (after the last one, every state again)."""
        self.state = _FILTERS[(_FILTERS.index(self.state) + 1) % len(_FILTERS)]
        self._show_title(None)
        self.reload()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self._open(int(event.row_key.value))

    def action_open(self) -> None:
        key = highlighted_key(self.query_one("#outbox", DataTable))
        if key is not None:
            self._open(int(key))

    def _open(self, outbox_id: int) -> None:
        if self._templates is None:
            settings = self.context.settings
            self._templates = Templates(
                settings.resolve(settings.templates_dir), settings.templates
            )
        self.app.push_screen(MessageScreen(outbox_id, self._templates))


class MessageScreen(StoreScreen):
    """One outbox message rendered by delivery's own code: its headers, the text part and
    the HTML source."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "back", "Back")]

    def __init__(self, outbox_id: int, templates: Templates) -> None:
        super().__init__()
        self.outbox_id = outbox_id
        self.templates = templates

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="message"):
            with Vertical(classes="panel"):
                yield Static(f"Message {self.outbox_id}", classes="panel-title")
                yield Static("rendering...", id="message-head")
            with Vertical(classes="panel"):
                yield Static("Text", classes="panel-title")
                yield Static("", id="message-text")
            with Vertical(classes="panel", id="message-html-panel"):
                yield Static("HTML source", classes="panel-title")
                yield Static("", id="message-html")
        yield KeysFooter()

    async def load(self) -> None:
        context = self.context
        shown = await message_as_sent(
            context.store, context.settings, self.templates, self.outbox_id
        )
        self.show(shown)

    def show(self, shown: MessageAsSent | None) -> None:
        head = self.query_one("#message-head", Static)
        if shown is None:
            head.update(Text(f"there is no outbox message {self.outbox_id}", style="red"))
            return
        head.update(_head_text(shown, self.context.settings.zone))
        message = shown.message
        self.query_one("#message-text", Static).update(
            Text(message.text) if message else Text("-", style="dim")
        )
        html = self.query_one("#message-html", Static)
        if message is not None and message.html:
            html.update(Syntax(message.html, "html", word_wrap=True, theme="ansi_dark"))
        else:
            html.update(Text("no HTML part", style="dim"))

    def action_back(self) -> None:
        self.dismiss()


def _head_text(shown: MessageAsSent, zone: ZoneInfo) -> Text:
    entry, message = shown.entry, shown.message
    text = Text()

    def line(name: str, value: str | None, style: str = "") -> None:
        text.append(f"{name:<11}", style="bold")
        text.append(f"{value or '-'}\n", style=style)

    line("state", entry.state, _STATE_STYLES.get(entry.state, ""))
    line("campaign", f"{entry.campaign} ({entry.category}), variant {entry.variant}")
    line("customer", entry.customer)
    line("channel", entry.channel)
    if entry.sent_at:
        line("sent", moment_text(entry.sent_at, zone))
    else:
        line("due", moment_text(entry.due_at, zone))
    if entry.error:
        line("error", entry.error.split("\n", 1)[0], "red")
    if message is None:
        text.append(f"delivery would not send it now: {shown.withheld}", style="yellow")
        return text
    line("Message-ID", message.message_id)
    line("to", message.address)
    line("subject", message.subject)
    if entry.state == "control":
        text.append("a control message: never sent; shown as it would have gone out\n", style="dim")
    elif not entry.sent_at:
        text.append("not sent yet: rendered as it would go out now\n", style="dim")
    text.rstrip()
    return text
