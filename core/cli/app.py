"""The ``cadence`` command group and what every command shares.

Every command takes ``--config`` (the settings file or its folder) and
``--now`` (pin the clock). Errors a user can fix print one clear message and
exit 1; an import that rejected rows exits 3, so scripts can tell.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape

from core import __version__, clock
from core.db import Store, open_store
from core.errors import CadenceError
from core.settings import Settings, load_settings

if TYPE_CHECKING:
    from core.program import Program

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

# soft_wrap: lines are never broken at the terminal's width, so paths, URLs and
# messages stay whole in logs, pipes and scripts (tables still fit the width).
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    if value is not None:
        ctx.find_root().meta[f"cadence.{param.name}"] = value


def common_options(command: F) -> F:
    """``--config`` and ``--now``, accepted by every command (and by ``cadence`` itself)."""
    command = click.option(
        "--config",
        type=click.Path(path_type=Path),
        expose_value=False,
        callback=_remember,
        help="Settings file, or a folder holding cadence.toml (default: ./cadence.toml).",
    )(command)
    return click.option(
        "--now",
        metavar="TIMESTAMP",
        expose_value=False,
        callback=_remember,
        help="Pin the clock (ISO 8601); anything dated later has not happened yet.",
    )(command)


def load_command_settings() -> Settings:
    """Load the settings chosen by --config and install the clock chosen by --now."""
    meta = click.get_current_context().find_root().meta
    settings = load_settings(meta.get("cadence.config"))
    if "cadence.now" in meta:
        clock.install(clock.FixedClock(clock.parse_moment(meta["cadence.now"], settings.zone)))
    return settings


def load_command_program(settings: Settings) -> Program:
    """The program in the settings' ``program_dir``, checked and compiled."""
    from core.program import load_program

    return load_program(settings.resolve(settings.program_dir))


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def run_fast(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run network-bound commands (delivery, the sink) on uvloop where it is installed."""
    from core.event_loop import run_on_fast_loop

    return run_on_fast_loop(coroutine)


async def with_store(
    settings: Settings,
    work: Callable[[Store], Coroutine[Any, Any, T]],
    *,
    needs_schema: bool = True,
) -> T:
    """Run ``work`` on the configured store; unless told otherwise, the store must be at
    the latest schema, or the command stops with what to run instead."""
    store = open_store(settings)
    try:
        if needs_schema:
            await _require_latest_schema(store, settings)
        return await work(store)
    finally:
        await store.close()


async def _require_latest_schema(store: Store, settings: Settings) -> None:
    from core.migrations import current_revision, head_revision

    revision, head = await current_revision(store), head_revision()
    if revision != head:
        where = f"the database at {safe_url(settings)}"
        state = "has no tables yet" if revision is None else f"is at schema {revision}"
        raise CadenceError(
            f"{where} {state}, not the latest ({head}); run `cadence db upgrade` first"
        )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cadence")
@common_options
def cli() -> None:
    """Cadence: lifecycle CRM marketing automation with a terminal console."""


def masked_url(database_url: str) -> str:
    """``database_url`` with its password, if any, replaced by asterisks."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(database_url).render_as_string(hide_password=True)
    except ArgumentError:
        return database_url if "@" not in database_url else "(not a valid URL; hidden)"


def safe_url(settings: Settings) -> str:
    from core.db import normalise_url

    return normalise_url(settings.database_url).render_as_string(hide_password=True)


def main() -> None:
    try:
        status = cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        err.print("aborted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except CadenceError as exc:
        err.print("[bold red]error:[/]", escape(str(exc)), highlight=False)
        sys.exit(1)
    sys.exit(status if isinstance(status, int) else 0)
