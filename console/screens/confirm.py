"""Confirmations before an action that changes anything: a yes or no, or, for a launch,
the campaign's name typed out."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static


class ConfirmScreen(ModalScreen[bool]):
    """``question`` with Yes and No; y or enter says yes, n or escape says no."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="confirm"):
            yield Static(self.question, classes="confirm-question")
            with Horizontal(classes="confirm-buttons"):
                yield Button("Yes", id="yes", variant="warning")
                yield Button("No", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class TypedConfirmScreen(ModalScreen[bool]):
    """``question``, confirmed only by typing ``expected`` (the campaign's name) and
    pressing enter; escape gives up."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "give_up", "Cancel")]

    def __init__(self, question: str, expected: str) -> None:
        super().__init__()
        self.question = question
        self.expected = expected

    def compose(self) -> ComposeResult:
        with Vertical(classes="confirm"):
            yield Static(self.question, classes="confirm-question")
            yield Static(f"Type [b]{self.expected}[/b] and press enter to confirm.")
            yield Input(placeholder=self.expected, id="typed")
            yield Static("", id="typed-problem", classes="field-problem")

    def action_give_up(self) -> None:
        self.dismiss(False)

    @on(Input.Submitted, "#typed")
    def _submitted(self, event: Input.Submitted) -> None:
        if event.value.strip() == self.expected:
            self.dismiss(True)
            return
        self.query_one("#typed-problem", Static).update(
            f"That is not {self.expected!r}: nothing is launched."
        )
