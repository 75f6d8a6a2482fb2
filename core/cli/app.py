"""The ``cadence`` command group and what every command shares.

Every command takes ``--config`` (the settings file or its folder) and
``--now`` (pin the clock). Errors a user can fix print one clear message and
exit 1; an import that rejected rows exits 3, so scripts can tell.

The commands live in modules of their own, named in :data:`COMMAND_MODULES` and
imported only when a command is looked up: a ``cadence`` process loads what its
command needs, not the database layer, the console and the mail client of every
other command (importing them all cost about 0.8 s at each start).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Coroutine, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape

from core import __version__, clock
from core.errors import CadenceError

if TYPE_CHECKING:
    from core.db import Store
    from core.program import Program
    from core.settings import Settings

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
    from core.settings import load_settings

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
    import asyncio

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
    from core.db import open_store

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


#: Each command of ``cadence`` and the modules that define it and its subcommands.
COMMAND_MODULES: Mapping[str, tuple[str, ...]] = {
    "api": ("core.cli.ingest_commands",),
    "bench": ("core.cli.bench_commands",),
    "bounces": ("core.cli.bounce_commands",),
    "campaign": ("core.cli.campaign_commands", "core.cli.run_commands"),
    "check": ("core.cli.ops_commands",),
    "config": ("core.cli.store_commands",),
    "console": ("core.cli.console_commands",),
    "customer": ("core.cli.customer_commands",),
    "db": ("core.cli.store_commands", "core.cli.ops_commands"),
    "deliver": ("core.cli.delivery_commands",),
    "demo": ("core.cli.store_commands",),
    "demo-data": ("core.cli.store_commands",),
    "import": ("core.cli.store_commands",),
    "ingest": ("core.cli.ingest_commands",),
    "init": ("core.cli.store_commands",),
    "intel": ("core.cli.intel_commands",),
    "program": ("core.cli.program_commands",),
    "report": ("core.cli.report_commands", "core.cli.report_stage_commands"),
    "run": ("core.cli.node_commands",),
    "scheduler": ("core.cli.node_commands",),
    "segments": ("core.cli.intel_commands",),
    "simulate": ("core.cli.simulate_commands",),
    "sink": ("core.cli.sink_commands",),
    "stages": ("core.cli.intel_commands",),
}


class LazyGroup(click.Group):
    """A group whose commands register themselves when their modules are imported,
    which happens the first time a command is looked up (or listed for ``--help``)."""

    def __init__(
        self, *args: Any, command_modules: Mapping[str, Iterable[str]], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.command_modules = command_modules

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        # Every module of the name, even when the name is already registered: a group
        # may take subcommands from more than one module. A name not in the table
        # loads them all, so a mistyped command is still told the names near it.
        for module in self.command_modules.get(cmd_name, self._all_modules()):
            importlib.import_module(module)
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.command_modules})

    def _all_modules(self) -> list[str]:
        return sorted({module for modules in self.command_modules.values() for module in modules})


@click.group(
    cls=LazyGroup,
    command_modules=COMMAND_MODULES,
    context_settings={"help_option_names": ["-h", "--help"]},
)
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
