"""The footer every console screen shows its keys in."""

from __future__ import annotations

from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer

Shown = tuple[tuple[str, Binding, bool, str], ...]
"""The keys a footer shows: key, binding, whether enabled, tooltip."""


class KeysFooter(Footer):
    """Textual's footer, built again only when the keys it shows change.

    Textual's own builds its keys again on every change of the screen's bindings, which
    each showing of the screen and each move of the focus signals: a dozen widgets
    created and styled again, most of the styling work of a screen switch.
    """

    _shown: Shown | None = None

    def bindings_changed(self, screen: Screen[object]) -> None:
        shown = _shown_keys(screen)
        if shown == self._shown:
            return
        super().bindings_changed(screen)
        # What Footer.bindings_changed asks to rebuild for; otherwise it waits for a later
        # change, which must not be taken for one already shown.
        if screen.app.app_focus and self.is_attached and screen is self.screen:
            self._shown = shown


def _shown_keys(screen: Screen[object]) -> Shown:
    palette = screen.app.COMMAND_PALETTE_BINDING
    return tuple(
        (key, active.binding, active.enabled, active.tooltip)
        for key, active in screen.active_bindings.items()
        if active.binding.show or key == palette
    )
