"""Message templates, rendered in a sandbox with plain data and limits.

A template ``NAME`` is up to three files in the templates folder
(``templates_dir``): ``NAME.subject.j2`` (e-mail and files: one line),
``NAME.txt.j2`` (plain text, every channel) and ``NAME.html.j2`` (optional
HTML, every value escaped). They see (see :func:`message_context`):
``customer`` (``name``, ``first_name``, ``email``, ``attributes.x``...),
``stage``, ``scores`` (``scores.rfm_score``...), ``campaign``,
``variant``, ``brand``, ``unsubscribe_url``, ``open_url`` (the open pixel:
``<img src="{{ open_url }}" width="1" height="1" alt="">``),
``link('https://...')`` (the tracked address of a call-to-action) and
``recommendations(n)`` (the first ``n`` recommended products, each with
``product_id`` and ``score``). ``None`` prints as nothing.

The delivery worker makes one :class:`Templates` and calls
:meth:`Templates.render` per message; a :class:`TemplateRenderError` fails
that message only. ``cadence program validate`` runs :func:`check_templates`.
Limits (``[templates]`` in the settings): file size, output size and render
time; see :mod:`core.templates.sandbox` for what else is refused.
"""

from core.templates.check import check_templates, render_sample
from core.templates.context import message_context, sample_context
from core.templates.render import (
    CHANNEL_PARTS,
    RenderedMessage,
    TemplateRenderError,
    Templates,
    available_templates,
    missing_template_files,
    template_files,
)

__all__ = [
    "CHANNEL_PARTS",
    "RenderedMessage",
    "TemplateRenderError",
    "Templates",
    "available_templates",
    "check_templates",
    "message_context",
    "missing_template_files",
    "render_sample",
    "sample_context",
    "template_files",
]
