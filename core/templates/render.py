"""Rendering one message from its template files, fast and within limits.

A template ``NAME`` is up to three files in the templates folder:
``NAME.subject.j2`` (one line, no escaping), ``NAME.txt.j2`` (plain text, no
escaping) and ``NAME.html.j2`` (HTML, every printed value escaped). Which
of them a channel uses is :data:`CHANNEL_PARTS`. Each file is read and
compiled once per :class:`Templates` and kept, so a render only runs
compiled code; a file that fails to load fails every message that needs
it, with the same reason, without being read again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Literal

from jinja2 import Template, TemplateSyntaxError, UndefinedError
from jinja2.exceptions import SecurityError

from core.errors import CadenceError
from core.settings import TemplateSettings
from core.templates.budget import TemplateLimitError, TooLarge, end_deadline, start_deadline
from core.templates.sandbox import TemplateEnvironment

Part = Literal["subject", "txt", "html"]

CHANNEL_PARTS: dict[str, tuple[tuple[Part, bool], ...]] = {
    "email": (("subject", True), ("txt", True), ("html", False)),
    "file": (("subject", True), ("txt", True), ("html", False)),
    "in_app": (("subject", False), ("txt", True), ("html", False)),
    "webhook": (("subject", False), ("txt", True), ("html", False)),
    "sms": (("txt", True),),
}
"""Per channel, the parts it sends and whether each is required: the text always; a
subject for e-mail and files; an in-app message or a webhook may have a title; HTML is
optional wherever it is used; an SMS is its text alone."""

_REASON_CHARS = 300
"""Error reasons are cut to this length: they end up in the outbox's error column."""

_CHUNKS_PER_COUNT = 256

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


class TemplateRenderError(CadenceError):
    """A template could not be loaded or rendered; the message names the file, the line
    when known, and the reason (undefined variable, sandbox violation, too large, too
    slow, syntax error...)."""

    def __init__(self, template: str, reason: str, line: int | None = None) -> None:
        self.template = template
        """The file, e.g. ``welcome.html.j2``."""
        self.reason = reason
        self.line = line
        where = f"{template} line {line}" if line else template
        super().__init__(f"template {where}: {reason}")

    def describe(self, directory: Path) -> str:
        """One problem line: ``path:line: reason``."""
        line = f":{self.line}" if self.line else ""
        return f"{directory / self.template}{line}: {self.reason}"


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    """A rendered message: the subject (one line) where the channel has one, the plain
    text, and the HTML where the template has it."""

    subject: str | None
    text: str
    html: str | None


@dataclass(frozen=True, slots=True)
class _Compiled:
    filename: str
    template: Template


@dataclass(frozen=True, slots=True)
class _Failed:
    """A file that did not load, kept so the next message fails the same way at once."""

    filename: str
    reason: str
    line: int | None

    def error(self) -> TemplateRenderError:
        return TemplateRenderError(self.filename, self.reason, self.line)


@dataclass(frozen=True, slots=True)
class _Parts:
    subject: _Compiled | None
    text: _Compiled
    html: _Compiled | None


def template_files(name: str, channel: str) -> list[tuple[str, bool]]:
    """The files of template ``name`` that ``channel`` uses, each with whether it must
    exist: subject, text, HTML, in that order."""
    return [(_file_name(name, part), required) for part, required in _parts_of(channel)]


def _parts_of(channel: str) -> tuple[tuple[Part, bool], ...]:
    try:
        return CHANNEL_PARTS[channel]
    except KeyError:
        known = ", ".join(CHANNEL_PARTS)
        raise ValueError(f"unknown channel {channel!r}; known: {known}") from None


def _file_name(name: str, part: Part) -> str:
    return f"{name}.{part}.j2"


def missing_template_files(name: str, channel: str, directory: Path) -> list[str]:
    """The files template ``name`` needs for ``channel`` that ``directory`` lacks."""
    return [
        filename
        for filename, required in template_files(name, channel)
        if required and not (directory / filename).is_file()
    ]


def available_templates(channel: str, directory: Path) -> list[str]:
    """The names of the templates in ``directory`` that have every file ``channel`` needs,
    sorted: what an operator may choose from for a launch on ``channel``."""
    names = {path.name.split(".", 1)[0] for path in directory.glob("*.j2")}
    return sorted(name for name in names if not missing_template_files(name, channel, directory))


class Templates:
    """The templates of one folder, compiled on first use and kept.

    The delivery worker makes one and calls :meth:`render` for each
    message; a failure concerns that message only.
    """

    def __init__(self, directory: Path, settings: TemplateSettings) -> None:
        self.directory = directory
        self.settings = settings
        self._environment = TemplateEnvironment(settings.max_output_bytes)
        self._files: dict[str, _Compiled | _Failed | None] = {}
        self._parts: dict[tuple[str, str], _Parts] = {}

    def render(self, name: str, channel: str, context: Mapping[str, Any]) -> RenderedMessage:
        """Render template ``name`` for ``channel`` with ``context`` (see
        :func:`core.templates.message_context`); raises :class:`TemplateRenderError`."""
        parts = self._parts.get((name, channel)) or self._load(name, channel)
        token = start_deadline(self.settings.render_timeout_ms)
        try:
            subject = None if parts.subject is None else self._render(parts.subject, context)
            text = self._render(parts.text, context)
            html = None if parts.html is None else self._render(parts.html, context)
        finally:
            end_deadline(token)
        return RenderedMessage(None if subject is None else one_line(subject), text, html)

    def problems(
        self, name: str, channel: str, context: Mapping[str, Any]
    ) -> list[TemplateRenderError]:
        """Every file of template ``name`` for ``channel`` loaded and rendered on its own
        with ``context``: what went wrong in each, for checking a program."""
        found: list[TemplateRenderError] = []
        for filename, required in template_files(name, channel):
            try:
                compiled = self._file(filename, required)
                if compiled is not None:
                    token = start_deadline(self.settings.render_timeout_ms)
                    try:
                        self._render(compiled, context)
                    finally:
                        end_deadline(token)
            except TemplateRenderError as error:
                found.append(error)
        return found

    def _load(self, name: str, channel: str) -> _Parts:
        files = {
            part: self._file(_file_name(name, part), required)
            for part, required in _parts_of(channel)
        }
        text = files["txt"]
        assert text is not None  # the text is required for every channel
        parts = _Parts(files.get("subject"), text, files.get("html"))
        self._parts[(name, channel)] = parts
        return parts

    def _file(self, filename: str, required: bool) -> _Compiled | None:
        """The compiled file; None for an optional one that is not there."""
        loaded = self._files.get(filename)
        if loaded is None and filename not in self._files:
            loaded = self._compile(filename)
            self._files[filename] = loaded
        if isinstance(loaded, _Failed):
            raise loaded.error()
        if loaded is None and required:
            raise TemplateRenderError(filename, f"no such file in {self.directory}")
        return loaded

    def _compile(self, filename: str) -> _Compiled | _Failed | None:
        path = self.directory / filename
        if not path.is_file():
            return None
        limit = self.settings.max_template_bytes
        size = path.stat().st_size
        if size > limit:
            reason = f"too large: {size:,} bytes, over templates.max_template_bytes ({limit:,})"
            return _Failed(filename, reason, None)
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            return _Failed(filename, f"cannot be read as UTF-8 text: {error}", None)
        try:
            template = self._environment.compile_template(source, filename, str(path))
        except TemplateSyntaxError as error:
            return _Failed(filename, f"syntax error: {error.message}", error.lineno)
        return _Compiled(filename, template)

    def _render(self, compiled: _Compiled, context: Mapping[str, Any]) -> str:
        limit = self.settings.max_output_bytes
        chunks: list[str] = []
        size = 0
        try:
            output = compiled.template.generate(context)
            # Counted a batch of chunks at a time, not one by one: per chunk that cost a
            # fifth of a render. A chunk is at most a printed value, itself under the
            # limit, and the joining comes after the count.
            while batch := list(islice(output, _CHUNKS_PER_COUNT)):
                size += sum(map(len, batch))
                if size > limit:
                    raise TooLarge(f"the output passed templates.max_output_bytes ({limit:,})")
                chunks.extend(batch)
            text = "".join(chunks)
            # Characters were counted; bytes can only be more where the text is not ASCII.
            if size * 4 > limit and len(text.encode("utf-8")) > limit:
                raise TooLarge(f"the output passed templates.max_output_bytes ({limit:,})")
        except Exception as error:  # whatever a template does wrong fails this message only
            raise TemplateRenderError(
                compiled.filename, _reason(error), _template_line(error, compiled.template)
            ) from None
        return text


def one_line(text: str) -> str:
    """``text`` with line breaks and other control characters made single spaces, so a
    subject can never start a new mail header."""
    return " ".join(_CONTROL.sub(" ", text).split())


def _reason(error: Exception) -> str:
    if isinstance(error, TemplateLimitError):
        reason = f"{error.reason}: {error}"
    elif isinstance(error, UndefinedError):
        reason = f"undefined variable: {error}"
    elif isinstance(error, SecurityError):
        reason = f"sandbox violation: {error}"
    elif isinstance(error, OverflowError | MemoryError):
        reason = f"too large: {error or 'out of memory'}"
    elif isinstance(error, RecursionError):
        reason = "too deep: macros or loops call themselves without end"
    else:
        reason = f"{type(error).__name__}: {error}"
    return reason if len(reason) <= _REASON_CHARS else reason[: _REASON_CHARS - 3] + "..."


def _template_line(error: Exception, template: Template) -> int | None:
    """The template line the error came from: Jinja2 rewrites the traceback so that its
    frames name the template file and line."""
    line = None
    frame = error.__traceback__
    while frame is not None:
        if frame.tb_frame.f_code.co_filename == template.filename:
            line = frame.tb_lineno
        frame = frame.tb_next
    return line
