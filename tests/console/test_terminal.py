"""``cadence console`` in a real terminal: tmux runs it, keys go in with ``send-keys`` and
the screen comes back with ``capture-pane``; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from config import DEFAULT_CONFIG_DIR
from core.db import Store
from core.settings import Settings
from tests.console.world import living_store
from tests.helpers import CADENCE

TMUX = shutil.which("tmux")
pytestmark = pytest.mark.skipif(TMUX is None, reason="tmux is not installed (.ci/run installs it)")
WAIT_SECONDS = 60.0


class Terminal:
    """One tmux session of 100x30 running one command."""

    def __init__(self, name: str) -> None:
        self.name = name

    def tmux(self, *args: str) -> str:
        assert TMUX is not None
        done = subprocess.run([TMUX, *args], capture_output=True, text=True, timeout=30, check=True)
        return done.stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", self.name)

    def press(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", self.name, *keys)

    def wait_for(self, text: str) -> str:
        """The screen once it shows ``text``; fails with the screen after a while."""
        deadline = time.monotonic() + WAIT_SECONDS
        shown = ""
        while time.monotonic() < deadline:
            shown = self.screen()
            if text in shown:
                return shown
            time.sleep(0.2)
        raise AssertionError(f"{text!r} never appeared on the terminal:\n{shown}")

    def wait_for_gone(self, text: str) -> str:
        """The screen once it no longer shows ``text``."""
        deadline = time.monotonic() + WAIT_SECONDS
        shown = self.screen()
        while text in shown and time.monotonic() < deadline:
            time.sleep(0.2)
            shown = self.screen()
        assert text not in shown, f"{text!r} stayed on the terminal:\n{shown}"
        return shown

    def alive(self) -> bool:
        assert TMUX is not None
        probe = subprocess.run([TMUX, "has-session", "-t", self.name], capture_output=True)
        return probe.returncode == 0


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    session = Terminal(f"cadence-{uuid.uuid4().hex[:8]}")
    yield session
    if session.alive():
        session.tmux("kill-session", "-t", session.name)


def _settings_file(tmp_path: Path, settings: Settings) -> Path:
    path = tmp_path / "cadence.toml"
    path.write_text(
        f'database_url = "{settings.database_url}"\n'
        f'program_dir = "{DEFAULT_CONFIG_DIR / "program"}"\n'
        f'templates_dir = "{DEFAULT_CONFIG_DIR / "templates"}"\n',
        encoding="utf-8",
    )
    return path


async def test_the_console_runs_in_a_real_terminal_and_answers_its_keys(
    store: Store, settings: Settings, tmp_path: Path, terminal: Terminal
) -> None:
    await living_store(store, settings)
    config = _settings_file(tmp_path, settings)
    # A clean environment, as on an operator's machine; TERM is tmux's own terminal, and
    # COLORTERM is unset, as over SSH: the console must degrade to 256 colours.
    command = (
        'exec env -i HOME="$HOME" PATH="$PATH" LANG=C.UTF-8 TERM="$TERM" '
        f"sh -c '{CADENCE} --config {config} console --read-only; "
        f"echo exited $? > {tmp_path / 'exit-code'}'"
    )
    terminal.tmux("new-session", "-d", "-s", terminal.name, "-x", "100", "-y", "30", command)
    loop = asyncio.get_running_loop()

    async def wait_for(text: str) -> str:
        return await loop.run_in_executor(None, terminal.wait_for, text)

    await wait_for("Lifecycle stages")
    dashboard = await wait_for("reactivated")  # the stages, once read from the store
    assert "registered" in dashboard and "inactive" in dashboard
    assert "read-only" in dashboard  # the header says so
    terminal.press("?")
    help_screen = await wait_for("Cadence operations console")
    assert "Launch" not in help_screen  # read-only: no launching
    terminal.press("Escape")
    # Only once the help is gone: a key straight after Escape reads as alt+key.
    await loop.run_in_executor(None, terminal.wait_for_gone, "Cadence operations console")
    terminal.press("c")
    campaigns = await wait_for("Campaigns: ")
    assert "inactive-winback" in campaigns
    terminal.press("q")
    exit_file = tmp_path / "exit-code"
    for _ in range(150):
        if exit_file.exists():
            break
        await asyncio.sleep(0.2)
    assert exit_file.exists(), terminal.screen() if terminal.alive() else "tmux session gone"
    assert exit_file.read_text().strip() == "exited 0"
