"""``cadence program``: check the program files, see what applying them changes, apply them."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from rich.table import Table

from core import clock
from core.cli.app import cli, common_options, load_command_settings, out, run, with_store
from core.db import Store
from core.program import Program, ProgramError, load_program
from core.settings import Settings
from core.templates import check_templates

if TYPE_CHECKING:  # the plan's machinery loads when a command needs it, not for --help
    from core.program.apply import ApplyResult, Diff, ProgramPlan


@cli.group()
def program() -> None:
    """The marketing program: stages, segments, scores and campaigns, as files."""


def _checked_program(settings: Settings) -> Program:
    """The program files, validated with the templates they use, each compiled and rendered
    for a sample customer (exits 1 on a problem)."""
    templates_dir = settings.resolve(settings.templates_dir)
    checked = load_program(settings.resolve(settings.program_dir), templates_dir)
    problems = check_templates(templates_dir, settings.templates, checked.template_uses())
    if problems:
        raise ProgramError("\n".join(["the templates have problems:", *problems]))
    return checked


@program.command("validate")
@common_options
def program_validate() -> None:
    """Check every program file, rule and schedule, and render every template the campaigns
    use for a sample customer; exit 1 on a problem."""
    settings = load_command_settings()
    checked = _checked_program(settings)
    templates = len({name for name, _ in checked.template_uses()})
    kinds = Counter(campaign.spec.kind for campaign in checked.campaigns)
    by_kind = ", ".join(
        f"{count} {kind.replace('_', '-')}" for kind, count in sorted(kinds.items())
    )
    out.print(
        f"The program in {checked.directory} is valid: {len(checked.stages)} stages, "
        f"{len(checked.segments)} segments, {len(checked.campaigns)} campaigns"
        + (f" ({by_kind})" if by_kind else "")
        + f"; {templates} templates render for a sample customer."
    )


@program.command("plan")
@common_options
def program_plan() -> None:
    """Show what `cadence program apply` would change: campaigns and segments added,
    changed and removed, with each campaign's audience before and after."""
    from core.program.apply import plan_program

    settings = load_command_settings()
    checked = _checked_program(settings)

    async def work(store: Store) -> ProgramPlan:
        async with store.reading() as session:
            return await plan_program(session, checked, clock.now())

    plan = run(with_store(settings, work))
    if plan.up_to_date:
        out.print("Nothing to apply: the database runs these files.")
        return
    out.print(f"Applying {checked.directory} would change {plan.summary()}.")
    _print_plan(plan)
    out.print("Run `cadence program apply` to apply it.")


@program.command("apply")
@common_options
def program_apply() -> None:
    """Apply the program files to the database in one transaction, as a new program version."""
    from core.program.apply import apply_program

    settings = load_command_settings()
    checked = _checked_program(settings)

    async def work(store: Store) -> ApplyResult:
        return await apply_program(store, checked, clock.now())

    result = run(with_store(settings, work))
    if not result.applied:
        out.print("Nothing changed: the database already runs these files.")
        return
    plan = result.plan
    out.print(f"Applied {checked.directory} as program version {result.version}: {plan.summary()}.")
    _print_plan(plan)


def _print_plan(plan: ProgramPlan) -> None:
    for conflict in plan.conflicts:
        out.print(
            f"[yellow]campaign `{conflict}` has the name of a launched campaign; "
            "rename it in the files, or apply refuses.[/]"
        )
    if not plan.changed:
        out.print(
            "No campaign or segment changes; the params changed, so a new version records them."
        )
        return
    for kind, diff in (("campaign", plan.campaigns), ("segment", plan.segments)):
        if not diff.empty:
            out.print(_diff_table(kind, diff))
    if any(
        change.audience is not None and change.audience.after is None
        for change in (*plan.campaigns.added, *plan.campaigns.changed)
    ):
        out.print(
            "? : the audience goes through a segment that is new or changed in the files; "
            "it is known once `cadence segments refresh` runs after the apply."
        )


def _diff_table(kind: str, diff: Diff) -> Table:
    """One row per added (+), changed (~) and removed (-) entry of ``diff``."""
    table = Table(title=f"{kind}s: {diff.counts()}", title_justify="left")
    table.add_column("")
    table.add_column(kind)
    table.add_column("changed fields")
    if kind == "campaign":
        table.add_column("audience", justify="right")
    for mark, changes in (("+", diff.added), ("~", diff.changed), ("-", diff.removed)):
        for change in changes:
            row = [mark, change.name, ", ".join(change.fields)]
            if kind == "campaign":
                removal = "archived" if mark == "-" else ""
                row.append(change.audience.describe() if change.audience else removal)
            table.add_row(*row)
    return table
