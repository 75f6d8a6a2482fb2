"""Checking a program's templates before anything is sent with them."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from core.settings import TemplateSettings
from core.templates.context import sample_context
from core.templates.render import RenderedMessage, Templates


def check_templates(
    directory: Path, settings: TemplateSettings, uses: Iterable[tuple[str, str]]
) -> list[str]:
    """Compile every file of each (template name, channel) in ``uses`` and render it for
    the sample customer; one line per problem (``path:line: reason``), none when all is
    well."""
    templates = Templates(directory, settings)
    context = sample_context(settings.brand)
    problems: dict[str, None] = {}  # a file used by several channels is reported once
    for name, channel in sorted(set(uses)):
        for error in templates.problems(name, channel, context):
            problems[error.describe(directory)] = None
    return list(problems)


def render_sample(
    directory: Path, settings: TemplateSettings, name: str, channel: str, campaign: str
) -> RenderedMessage:
    """Template ``name`` rendered for ``channel`` as the sample customer of
    :func:`check_templates` would get it from ``campaign``: a launch's message preview.
    Raises :class:`~core.templates.TemplateRenderError`."""
    context = {**sample_context(settings.brand), "campaign": campaign, "variant": name}
    return Templates(directory, settings).render(name, channel, context)
