"""The one error a rule can raise, pointing at where in the rule text the problem is."""

from __future__ import annotations

from core.errors import CadenceError


class RuleError(CadenceError):
    """A rule that cannot be parsed, type-checked or used, with its position.

    ``offset`` is 0-based into the rule text; ``line`` and ``column`` are
    1-based, with ``column`` counted from the start of its line (for the usual
    one-line rule, from the start of the rule text). All three are ``None`` for
    problems that have no place in the text, such as a bad parameter.
    """

    def __init__(
        self, problem: str, *, text: str = "", offset: int | None = None, hint: str | None = None
    ) -> None:
        self.problem = problem
        self.hint = hint
        self.offset = offset
        self.line: int | None = None
        self.column: int | None = None
        where = ""
        if offset is not None:
            self.line = text.count("\n", 0, offset) + 1
            self.column = offset - text.rfind("\n", 0, offset)
            where = (
                f" at line {self.line}, column {self.column}"
                if "\n" in text
                else f" at column {self.column}"
            )
        super().__init__(problem + where + (f"; {hint}" if hint else ""))
