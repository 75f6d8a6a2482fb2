"""``cadence program``: check the program files."""

from __future__ import annotations

from collections import Counter

from core.cli.app import cli, common_options, load_command_settings, out
from core.program import load_program


@cli.group()
def program() -> None:
    """The marketing program: stages, segments, scores and campaigns, as files."""


@program.command("validate")
@common_options
def program_validate() -> None:
    """Check every program file, rule, schedule and template reference; exit 1 on a problem."""
    settings = load_command_settings()
    directory = settings.resolve(settings.program_dir)
    checked = load_program(directory, settings.resolve(settings.templates_dir))
    kinds = Counter(campaign.spec.kind for campaign in checked.campaigns)
    by_kind = ", ".join(
        f"{count} {kind.replace('_', '-')}" for kind, count in sorted(kinds.items())
    )
    out.print(
        f"The program in {directory} is valid: {len(checked.stages)} stages, "
        f"{len(checked.segments)} segments, {len(checked.campaigns)} campaigns"
        + (f" ({by_kind})" if by_kind else "")
        + "."
    )
