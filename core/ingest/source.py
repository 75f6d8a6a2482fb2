"""Rows out of CSV and JSONL files, each with its line number, or the reason it is unreadable.

Reading never stops at a bad row: a line that is not UTF-8, a malformed CSV
record, a JSON line that does not parse or an oversize field comes out as a
:class:`Rejected` with its line number, and reading goes on.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

from core.errors import CadenceError

Format = Literal["csv", "jsonl"]
STDIN = "-"

# csv refuses fields over 128 KiB by raising, which would end the file; we
# let it read large fields and reject the row ourselves with a clear reason.
csv.field_size_limit(64 * 1024 * 1024)


@dataclass(frozen=True, slots=True)
class Row:
    """One record of the input: its first line number, fields by column name, raw text."""

    line: int
    fields: Mapping[str, Any]
    raw: str


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record that could not be imported, and why."""

    line: int
    reason: str
    raw: str


class RowError(ValueError):
    """Raised by a row parser; the row is rejected with this message."""


def format_of(path: str, explicit: Format | None = None) -> Format:
    """The file's format: explicit, else by extension; stdin is JSONL."""
    if explicit is not None:
        return explicit
    if path == STDIN:
        return "jsonl"
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    raise CadenceError(
        f"{path}: cannot tell the format from the extension {suffix or '(none)'}; "
        "name the file .csv or .jsonl, or pass --format csv|jsonl"
    )


class RowSource:
    """Iterates the rows of one input, tracking how far into it reading has come."""

    def __init__(
        self,
        path: str,
        fmt: Format,
        *,
        mapping: Mapping[str, str] | None = None,
        required: Iterable[str] = (),
        max_field_bytes: int = 64 * 1024,
    ) -> None:
        self.path = path
        self.format = fmt
        self.required = tuple(required)
        self.max_field_bytes = max_field_bytes
        # --map TARGET=SOURCE: the file's SOURCE column feeds field TARGET.
        self._rename = {source: target for target, source in (mapping or {}).items()}
        self._stream: IO[bytes] = sys.stdin.buffer if path == STDIN else self._open(path)
        self.total_bytes = 0 if path == STDIN else Path(path).stat().st_size
        self.bytes_read = 0

    @staticmethod
    def _open(path: str) -> IO[bytes]:
        try:
            return open(path, "rb")
        except OSError as exc:
            raise CadenceError(f"{path}: cannot open: {exc.strerror}") from None

    def close(self) -> None:
        if self._stream is not sys.stdin.buffer:
            self._stream.close()

    def __iter__(self) -> Iterator[Row | Rejected]:
        return self._csv_rows() if self.format == "csv" else self._jsonl_rows()

    def _lines(self, bad_lines: set[int]) -> Iterator[str]:
        """Decoded lines; a line that is not UTF-8 is noted in ``bad_lines``, not raised."""
        for number, raw in enumerate(self._stream, start=1):
            self.bytes_read += len(raw)
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError:
                bad_lines.add(number)
                line = raw.decode("utf-8", errors="replace")
            yield line

    def _too_long(self, values: Iterable[Any]) -> str | None:
        limit = self.max_field_bytes
        for value in values:
            if isinstance(value, str) and len(value) * 4 > limit and len(value.encode()) > limit:
                return f"a field is larger than {limit // 1024} KiB"
        return None

    def _csv_rows(self) -> Iterator[Row | Rejected]:
        bad: set[int] = set()
        lines = self._lines(bad)
        reader = csv.reader(lines, strict=True)
        try:
            header = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise CadenceError(f"{self.path}: cannot read the CSV header: {exc}") from None
        if 1 in bad:
            raise CadenceError(f"{self.path}: the header line is not UTF-8 text")
        columns = self._columns([name.strip() for name in header])
        width = len(columns)
        last = reader.line_num
        while True:
            first = last + 1
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                last = reader.line_num
                yield Rejected(first, f"malformed CSV: {exc}", "")
                continue
            last = reader.line_num
            raw = ",".join(values)
            if bad and any(n in bad for n in range(first, last + 1)):
                yield Rejected(first, "not valid UTF-8 text", raw)
            elif not values:
                continue  # a blank line carries no record
            elif len(values) != width:
                yield Rejected(first, f"expected {width} columns, found {len(values)}", raw)
            elif (oversize := self._too_long(values)) is not None:
                yield Rejected(first, oversize, raw[:200])
            else:
                yield Row(first, dict(zip(columns, values, strict=True)), raw)

    def _columns(self, header: list[str]) -> list[str]:
        columns = [self._rename.get(name, name) for name in header]
        duplicates = sorted({name for name in columns if columns.count(name) > 1})
        if duplicates:
            raise CadenceError(f"{self.path}: column {duplicates[0]!r} appears twice in the header")
        missing = [name for name in self.required if name not in columns]
        if missing:
            raise CadenceError(
                f"{self.path}: missing required column {missing[0]!r} "
                f"(found: {', '.join(header) or 'none'}); "
                f"if the file calls it something else, pass --map {missing[0]}=THAT_NAME"
            )
        return columns

    def _jsonl_rows(self) -> Iterator[Row | Rejected]:
        bad: set[int] = set()
        rename = self._rename
        for number, line in enumerate(self._lines(bad), start=1):
            text = line.strip()
            if not text:
                continue
            if number in bad:
                yield Rejected(number, "not valid UTF-8 text", text)
                continue
            if len(text) > self.max_field_bytes and len(text.encode()) > self.max_field_bytes:
                oversize = self._too_long(_leaves(text))
                if oversize is not None:
                    yield Rejected(number, oversize, text[:200])
                    continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as exc:
                yield Rejected(number, f"malformed JSON: {exc.msg} at column {exc.colno}", text)
                continue
            if not isinstance(record, dict):
                yield Rejected(number, "a line must hold one JSON object", text)
                continue
            if rename:
                record = {rename.get(key, key): value for key, value in record.items()}
            yield Row(number, record, text)


def _leaves(text: str) -> Iterator[Any]:
    """String values of a JSON line, for the field size check (tolerates bad JSON)."""
    try:
        stack: list[Any] = [json.loads(text)]
    except json.JSONDecodeError:
        return
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        else:
            yield node
