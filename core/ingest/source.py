"""Rows out of CSV and JSONL files, each with its line number, or the reason it is unreadable.

Reading never stops at a bad row: a line that is not UTF-8, a malformed CSV
record, a JSON line that does not parse or an oversize field comes out as a
:class:`Rejected` with its line number, and reading goes on.

Most CSV files are plain: no quotes, one record per line. Such stretches of
a file come out as a :class:`CsvRun`, split with ``str.split`` a block at a
time instead of record by record through the csv module, which leaves the
per-record cost to the importer.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import chain, repeat
from pathlib import Path
from typing import IO, Any, Literal

from core.errors import CadenceError

Format = Literal["csv", "jsonl"]
STDIN = "-"

# csv refuses fields over 128 KiB by raising, which would end the file; we
# let it read large fields and reject the row ourselves with a clear reason.
csv.field_size_limit(64 * 1024 * 1024)

# Lines end at LF only (a lone CR is data, as in binary file iteration), ends kept
# so that a quoted CSV field spanning lines keeps its line break.
_LINES = re.compile(r"[^\n]*\n|[^\n]+\Z")
_RAW_LINES = re.compile(rb"[^\n]*\n|[^\n]+\Z")


@dataclass(frozen=True, slots=True)
class Row:
    """One record of the input: its first line number, its data and its raw text.

    A JSONL row's ``data`` is the object; a CSV row's is the list of values in
    ``columns`` order, so that hot paths can read values by position.
    """

    line: int
    data: Mapping[str, Any] | list[str]
    raw: str
    columns: tuple[str, ...] = ()

    @property
    def fields(self) -> Mapping[str, Any]:
        """The row's values by field name."""
        data = self.data
        return dict(zip(self.columns, data, strict=True)) if isinstance(data, list) else data


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record that could not be imported, and why."""

    line: int
    reason: str
    raw: str


@dataclass(frozen=True, slots=True)
class CsvRun:
    """Consecutive plain CSV records, one a line from line ``first`` on: each has the
    header's width, no quote, CR (but the line end), NUL or oversize field, and is
    valid UTF-8, so splitting at commas reads it exactly as the csv module would."""

    first: int
    values: list[list[str]]
    raws: list[str]
    columns: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.raws)

    def rows(self) -> Iterator[Row]:
        for line, (values, raw) in enumerate(zip(self.values, self.raws, strict=True), self.first):
            yield Row(line, values, raw, self.columns)


class RowError(ValueError):
    """Raised by a row parser; the row is rejected with this message."""


def size_limit(limit: int) -> str:
    """``imports.max_field_bytes`` as a refusal says it: ``64 KiB``, or ``500 bytes`` when it
    is no whole number of KiB (``limit // 1024`` alone would say ``0 KiB``)."""
    return f"{limit // 1024} KiB" if limit % 1024 == 0 else f"{limit:,} bytes"


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
        # Decoded blocks as (first line number, lines), kept until the records in them
        # are read, so a rejected record is written exactly as it stood in the file.
        self._kept: list[tuple[int, list[str]]] = []
        self._stream: IO[bytes] = sys.stdin.buffer if path == STDIN else self._open(path)
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

    def __iter__(self) -> Iterator[Row | Rejected | CsvRun]:
        return self._csv_rows() if self.format == "csv" else self._jsonl_rows()

    BLOCK_BYTES = 1 << 20

    def _blocks(self, bad_lines: set[int]) -> Iterator[tuple[int, list[str]]]:
        """The input's lines with the first one's number, decoded a block at a time; a line
        that is not UTF-8 is decoded with replacement characters and its number noted in
        ``bad_lines``."""
        number = 0
        tail = b""
        while True:
            data = self._stream.read(self.BLOCK_BYTES)
            self.bytes_read += len(data)
            if not data:
                block, tail = tail, b""
            else:
                data = tail + data
                cut = data.rfind(b"\n") + 1
                if cut == 0:
                    tail = data
                    continue
                block, tail = data[:cut], data[cut:]
            if not block:
                return
            if number == 0 and block.startswith(b"\xef\xbb\xbf"):
                block = block[3:]
            try:
                lines = _LINES.findall(block.decode("utf-8"))
            except UnicodeDecodeError:
                lines = []
                for offset, raw in enumerate(_RAW_LINES.findall(block), start=1):
                    try:
                        lines.append(raw.decode("utf-8"))
                    except UnicodeDecodeError:
                        bad_lines.add(number + offset)
                        lines.append(raw.decode("utf-8", errors="replace"))
            if self.format == "csv":
                self._kept.append((number + 1, lines))
            yield number + 1, lines
            number += len(lines)

    def _too_long(self, values: Iterable[Any]) -> str | None:
        limit = self.max_field_bytes
        for value in values:
            if isinstance(value, str) and len(value) * 4 > limit and len(value.encode()) > limit:
                return f"a field is larger than {size_limit(limit)}"
        return None

    def _csv_rows(self) -> Iterator[Row | Rejected | CsvRun]:
        bad: set[int] = set()
        feed = _CsvFeed(self._blocks(bad), bad, self.max_field_bytes)
        reader = csv.reader(feed, strict=True)
        try:
            header = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise CadenceError(f"{self.path}: cannot read the CSV header: {exc}") from None
        if 1 in bad:
            raise CadenceError(f"{self.path}: the header line is not UTF-8 text")
        columns = tuple(self._columns([name.strip() for name in header]))
        width = len(columns)
        feed.width = width
        while True:
            feed.between_records = True
            try:
                values = next(reader)
            except StopIteration:
                if not feed.runs:
                    return
                yield from self._runs(feed, columns)
                continue
            except csv.Error as exc:
                first, last = feed.record_first, feed.fed
                span = f"line {first}" if last <= first else f"lines {first}-{last}"
                yield Rejected(first, f"malformed CSV ({span}): {exc}", self._text(first, last))
                continue
            first, last = feed.record_first, feed.fed
            raw = self._text(first, last)
            if bad and any(n in bad for n in range(first, last + 1)):
                yield Rejected(first, "not valid UTF-8 text", raw)
            elif not values:
                continue  # a blank line carries no record
            elif len(values) != width:
                yield Rejected(first, f"expected {width} columns, found {len(values)}", raw)
            elif len(raw) * 4 > self.max_field_bytes and (oversize := self._too_long(values)):
                yield Rejected(first, oversize, raw[:200])
            else:
                yield Row(first, values, raw, columns)

    def _runs(self, feed: _CsvFeed, columns: tuple[str, ...]) -> Iterator[Row | Rejected | CsvRun]:
        """The plain stretches the feed set aside, split at commas."""
        width = len(columns)
        for first, lines in feed.runs:
            self._forget(first)
            raws = list(map(str.rstrip, lines, repeat("\r\n")))
            values = list(map(str.split, raws, repeat(",")))
            if "" not in raws and set(map(len, values)) == {width}:
                yield CsvRun(first, values, raws, columns)
                continue
            # Blank lines or wrong widths: word them as the csv path does.
            for line, (record, raw) in enumerate(zip(values, raws, strict=True), first):
                if not raw:
                    continue
                if len(record) != width:
                    yield Rejected(line, f"expected {width} columns, found {len(record)}", raw)
                else:
                    yield Row(line, record, raw, columns)
        feed.runs.clear()

    def _forget(self, first: int) -> None:
        """Drop the kept blocks that end before line ``first``."""
        kept = self._kept
        while len(kept) > 1 and kept[1][0] <= first:
            del kept[0]

    def _text(self, first: int, last: int) -> str:
        """Lines ``first`` to ``last`` as they stood in the input, without the final newline."""
        self._forget(first)
        kept = self._kept
        start, lines = kept[0]
        if last - start < len(lines):
            text = "".join(lines[first - start : last - start + 1])
        else:
            spanned = [line for _, block in kept for line in block]
            text = "".join(spanned[first - start : last - start + 1])
        return text.rstrip("\r\n")

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
        lines = chain.from_iterable(block for _, block in self._blocks(bad))
        for number, line in enumerate(lines, start=1):
            text = line.strip()
            if not text:
                continue
            if number in bad:
                yield Rejected(number, "not valid UTF-8 text", text)
                continue
            if len(text) * 4 > self.max_field_bytes and len(text.encode()) > self.max_field_bytes:
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


class _CsvFeed:
    """The lines the csv reader reads, minus the plain stretches it need not read.

    At the first record that starts in a block, the rest of the block is
    checked; if it is plain (see :class:`CsvRun`) it goes to :attr:`runs`
    instead of the reader, which is told the input has ended so that the run
    is handed out before reading goes on. The reader is between records then,
    so it simply reads on when called again.
    """

    def __init__(self, blocks: Iterator[tuple[int, list[str]]], bad: set[int], limit: int):
        self._blocks = blocks
        self._bad = bad
        self._limit = limit
        self._first = 1
        self._lines: list[str] = []
        self._index = 0
        self._checked = False
        self.runs: list[tuple[int, list[str]]] = []
        """Plain stretches as (first line number, lines), waiting to be handed out."""
        self.width = 0
        """Columns of a record; 0 while the header is read, which is never set aside."""
        self.between_records = False
        """Set before the reader starts a record; cleared once its first line is fed."""
        self.record_first = 0
        """Number of the first line of the record being read."""
        self.fed = 0
        """Number of the last line fed to the reader."""

    def __iter__(self) -> _CsvFeed:
        return self

    def __next__(self) -> str:
        while self._index == len(self._lines):
            self._first, self._lines = next(self._blocks)
            self._index, self._checked = 0, False
        index = self._index
        if self.between_records:
            if self.width and not self._checked:
                self._checked = True
                rest = self._lines[index:]
                if self._plain(self._first + index, rest):
                    self.runs.append((self._first + index, rest))
                    self._index = len(self._lines)
                    raise StopIteration
            self.between_records = False
            self.record_first = self._first + index
        self.fed = self._first + index
        self._index = index + 1
        return self._lines[index]

    def _plain(self, first: int, lines: list[str]) -> bool:
        text = "".join(lines)
        return not (
            '"' in text
            or "\x00" in text
            or text.count("\r") != text.count("\r\n")
            or any(first <= n < first + len(lines) for n in self._bad)
            or max(map(len, lines)) * 4 > self._limit
        )


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
