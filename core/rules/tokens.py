"""The tokenizer: rule text to a list of tokens, refusing anything outside the grammar.

It is deliberately strict. Characters that only appear in injection attempts
or in other languages (``;``, backticks, ``#``, ``--`` comments, names
starting with ``_`` such as ``__import__``) are syntax errors at their
position, so nothing unexpected ever reaches the parser, let alone the
database.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import Enum

from core.rules.errors import RuleError


class Kind(Enum):
    NUMBER = "number"
    STRING = "string"
    NAME = "name"
    KEYWORD = "keyword"
    OPERATOR = "operator"
    END = "end"


KEYWORDS = frozenset({"and", "or", "not", "in", "is", "null", "between", "true", "false"})
# Longest first, so "<=" is never read as "<" then "=".
OPERATORS = ("==", "!=", "<=", ">=", "<", ">", "+", "-", "*", "/", "(", ")", "[", "]", ",", "=")

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_WHITESPACE = frozenset(" \t\r\n")
_HINTS = {
    ";": "a rule is a single expression",
    "&": "write `and`",
    "|": "write `or`",
    "!": "write `not`, or `!=` to compare",
    "`": "names are written without quotes",
    "_": "names start with a letter",
    "#": "rules have no comments",
}


@dataclass(frozen=True)
class Token:
    """One token: its kind, its source text, its value and where it is."""

    kind: Kind
    text: str
    value: float | str
    start: int
    end: int

    def describe(self) -> str:
        """How error messages name this token."""
        return "the end of the rule" if self.kind is Kind.END else f"`{self.text}`"


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens, ending with an END token."""
    tokens: list[Token] = []
    position = 0
    while position < len(text):
        char = text[position]
        if char in _WHITESPACE:
            position += 1
        elif char in "\"'":
            tokens.append(_string(text, position))
            position = tokens[-1].end
        elif match := _NUMBER.match(text, position):
            tokens.append(_number(text, match))
            position = match.end()
        elif match := _NAME.match(text, position):
            name = match.group()
            kind = Kind.KEYWORD if name in KEYWORDS else Kind.NAME
            tokens.append(Token(kind, name, name, position, match.end()))
            position = match.end()
        elif text.startswith("--", position):
            raise RuleError(
                "unexpected `--`",
                text=text,
                offset=position,
                hint="rules have no comments; to subtract a negative number write `- (-x)`",
            )
        else:
            operator = next((op for op in OPERATORS if text.startswith(op, position)), None)
            if operator is None:
                shown = char if char.isprintable() else repr(char)[1:-1]
                raise RuleError(
                    f"unexpected character `{shown}`",
                    text=text,
                    offset=position,
                    hint=_HINTS.get(char),
                )
            tokens.append(
                Token(Kind.OPERATOR, operator, operator, position, position + len(operator))
            )
            position += len(operator)
    tokens.append(Token(Kind.END, "", "", len(text), len(text)))
    return tokens


def _number(text: str, match: re.Match[str]) -> Token:
    end = match.end()
    if end < len(text) and (text[end] == "." or _NAME.match(text, end) or text[end] == "_"):
        raise RuleError(
            f"malformed number `{text[match.start() : end + 1]}`",
            text=text,
            offset=match.start(),
            hint="numbers are written like 42 or 3.5",
        )
    value = float(match.group())
    if not math.isfinite(value):
        raise RuleError("number too large", text=text, offset=match.start())
    return Token(Kind.NUMBER, match.group(), value, match.start(), end)


def _string(text: str, start: int) -> Token:
    """A string in single or double quotes; only the quote and backslash can be escaped."""
    quote = text[start]
    chars: list[str] = []
    position = start + 1
    while position < len(text):
        char = text[position]
        if char == quote:
            return Token(
                Kind.STRING, text[start : position + 1], "".join(chars), start, position + 1
            )
        if char == "\\":
            escaped = text[position + 1 : position + 2]
            if escaped not in (quote, "\\"):
                raise RuleError(
                    f"unknown escape `\\{escaped}` in a string",
                    text=text,
                    offset=position,
                    hint=f"only \\{quote} and \\\\ can be escaped",
                )
            chars.append(escaped)
            position += 2
        elif char == "\x00":
            raise RuleError(
                "NUL character in a string",
                text=text,
                offset=position,
                hint="the databases cannot store it",
            )
        elif char == "\n":
            break
        else:
            chars.append(char)
            position += 1
    raise RuleError(
        "unterminated string",
        text=text,
        offset=start,
        hint=f"close it with {quote} on the same line",
    )
