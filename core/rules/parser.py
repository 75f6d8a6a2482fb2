"""The recursive-descent parser: tokens to an untyped syntax tree.

Grammar, lowest precedence first (keywords are lowercase)::

    rule        := or_expr END
    or_expr     := and_expr ("or" and_expr)*
    and_expr    := not_expr ("and" not_expr)*
    not_expr    := "not" not_expr | comparison
    comparison  := additive [ ("==" | "!=" | "<" | "<=" | ">" | ">=") additive
                            | ["not"] "in" list
                            | ["not"] "between" additive "and" additive
                            | "is" ["not"] "null" ]
    additive    := term (("+" | "-") term)*
    term        := unary (("*" | "/") unary)*
    unary       := "-" unary | primary
    primary     := NUMBER | STRING | "true" | "false" | "null"
                 | NAME | NAME "(" [arguments] ")" | "(" or_expr ")"
    arguments   := argument ("," argument)*
    argument    := or_expr | NAME "=" or_expr
    list        := "[" item ("," item)* "]"
    item        := ["-"] NUMBER | STRING | "true" | "false" | "null"
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Literal, TypeVar, cast

from core.rules.errors import RuleError
from core.rules.nodes import (
    Arithmetic,
    ArithmeticOp,
    Between,
    Call,
    CompareOp,
    Comparison,
    Constant,
    InList,
    IsNull,
    Logical,
    Name,
    Negate,
    Node,
    Not,
    Span,
)
from core.rules.tokens import KEYWORDS, Kind, Token, tokenize

MAX_RULE_LENGTH = 10_000
MAX_DEPTH = 50

_COMPARE_OPS = frozenset({"==", "!=", "<", "<=", ">", ">="})
_CONSTANT_KEYWORDS: dict[str, bool | None] = {"true": True, "false": False, "null": None}

N = TypeVar("N", bound=Node)
_Operand = Callable[[], Node]


def parse(text: str) -> Node:
    """Parse ``text`` into a syntax tree, or raise :class:`RuleError` at the first problem."""
    if len(text) > MAX_RULE_LENGTH:
        raise RuleError(
            f"the rule is {len(text)} characters long; the limit is {MAX_RULE_LENGTH}",
            text=text,
            offset=MAX_RULE_LENGTH,
        )
    return _Parser(text).rule()


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.index = 0
        self.nesting = 0

    # -- token helpers ---------------------------------------------------

    @property
    def token(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.token
        if token.kind is not Kind.END:
            self.index += 1
        return token

    def at(self, kind: Kind, text: str) -> bool:
        return self.token.kind is kind and self.token.text == text

    def accept(self, kind: Kind, text: str) -> Token | None:
        return self.advance() if self.at(kind, text) else None

    def expect(self, kind: Kind, text: str, what: str) -> Token:
        if not self.at(kind, text):
            raise self.error(f"expected {what}, found {self.token.describe()}", self.token)
        return self.advance()

    def error(self, problem: str, token: Token, hint: str | None = None) -> RuleError:
        return RuleError(problem, text=self.text, offset=token.start, hint=hint)

    def span_from(self, start: int) -> Span:
        return Span(start, self.tokens[self.index - 1].end)

    def too_deep(self, offset: int) -> RuleError:
        return RuleError(
            f"the rule nests more than {MAX_DEPTH} levels deep",
            text=self.text,
            offset=offset,
            hint="split it into simpler conditions",
        )

    def node(self, node: N) -> N:
        """Check the depth limit on every node built, so deep trees never reach recursion."""
        if node.depth > MAX_DEPTH:
            raise self.too_deep(node.span.start)
        return node

    @contextmanager
    def nested(self) -> Iterator[None]:
        """Count a descent into parentheses, arguments or a prefix operator.

        Parentheses build no node, so the tree's depth alone would not stop
        ``((((...))))`` from exhausting Python's recursion limit.
        """
        self.nesting += 1
        if self.nesting > MAX_DEPTH:
            raise self.too_deep(self.token.start)
        yield
        self.nesting -= 1

    # -- grammar ---------------------------------------------------------

    def rule(self) -> Node:
        tree = self.or_expr()
        if self.token.kind is not Kind.END:
            raise self.error(
                f"expected an operator or the end of the rule, found {self.token.describe()}",
                self.token,
                self.hint_for(self.token),
            )
        return tree

    def hint_for(self, token: Token) -> str | None:
        if token.kind is Kind.NAME and token.text.lower() in KEYWORDS:
            return f"keywords are lowercase: write `{token.text.lower()}`"
        if token.kind is Kind.OPERATOR and token.text == "=":
            return "write `==` to compare"
        return None

    def or_expr(self) -> Node:
        return self.chain("or", self.and_expr)

    def and_expr(self) -> Node:
        return self.chain("and", self.not_expr)

    def chain(self, keyword: Literal["and", "or"], operand: _Operand) -> Node:
        start = self.token.start
        operands = [operand()]
        while self.accept(Kind.KEYWORD, keyword):
            operands.append(operand())
        if len(operands) == 1:
            return operands[0]
        return self.node(Logical(keyword, tuple(operands), span=self.span_from(start)))

    def not_expr(self) -> Node:
        start = self.token.start
        if not self.accept(Kind.KEYWORD, "not"):
            return self.comparison()
        with self.nested():
            operand = self.not_expr()
        return self.node(Not(operand, span=self.span_from(start)))

    def comparison(self) -> Node:
        start = self.token.start
        left = self.additive()
        token = self.token
        result: Node
        if token.kind is Kind.OPERATOR and token.text in _COMPARE_OPS:
            self.advance()
            right = self.additive()
            op = cast(CompareOp, token.text)
            result = Comparison(op, left, right, span=self.span_from(start))
        elif token.kind is Kind.KEYWORD and token.text in ("in", "not", "between"):
            negated = self.accept(Kind.KEYWORD, "not") is not None
            if self.accept(Kind.KEYWORD, "in"):
                result = InList(left, self.list_items(), negated, span=self.span_from(start))
            elif self.accept(Kind.KEYWORD, "between"):
                low = self.additive()
                self.expect(Kind.KEYWORD, "and", "`and` between the bounds of `between`")
                high = self.additive()
                result = Between(left, low, high, negated, span=self.span_from(start))
            else:
                raise self.error(
                    f"expected `in` or `between` after `not`, found {self.token.describe()}",
                    self.token,
                )
        elif self.accept(Kind.KEYWORD, "is"):
            negated = self.accept(Kind.KEYWORD, "not") is not None
            self.expect(Kind.KEYWORD, "null", "`null`")
            result = IsNull(left, negated, span=self.span_from(start))
        else:
            return left
        after = self.token
        if (after.kind is Kind.OPERATOR and after.text in _COMPARE_OPS) or (
            after.kind is Kind.KEYWORD and after.text in ("in", "is", "between")
        ):
            raise self.error(
                f"comparisons cannot be chained, found {after.describe()}",
                after,
                "join comparisons with `and`",
            )
        return self.node(result)

    def additive(self) -> Node:
        return self.binary(("+", "-"), self.term)

    def term(self) -> Node:
        return self.binary(("*", "/"), self.unary)

    def binary(self, ops: tuple[str, str], operand: _Operand) -> Node:
        start = self.token.start
        left = operand()
        while self.token.kind is Kind.OPERATOR and self.token.text in ops:
            op = cast(ArithmeticOp, self.advance().text)
            right = operand()
            left = self.node(Arithmetic(op, left, right, span=self.span_from(start)))
        return left

    def unary(self) -> Node:
        start = self.token.start
        if not self.accept(Kind.OPERATOR, "-"):
            return self.primary()
        with self.nested():
            operand = self.unary()
        return self.node(Negate(operand, span=self.span_from(start)))

    def primary(self) -> Node:
        token = self.token
        if token.kind in (Kind.NUMBER, Kind.STRING):
            self.advance()
            return Constant(token.value, span=Span(token.start, token.end))
        if token.kind is Kind.KEYWORD and token.text in _CONSTANT_KEYWORDS:
            self.advance()
            return Constant(_CONSTANT_KEYWORDS[token.text], span=Span(token.start, token.end))
        if token.kind is Kind.NAME:
            self.advance()
            if self.at(Kind.OPERATOR, "("):
                return self.call(token)
            return Name(token.text, span=Span(token.start, token.end))
        if self.at(Kind.OPERATOR, "("):
            opening = self.advance()
            with self.nested():
                inner = self.or_expr()
            self.expect(Kind.OPERATOR, ")", f"`)` to close the `(` at column {opening.start + 1}")
            return inner
        if self.at(Kind.OPERATOR, "["):
            raise self.error("a list is only allowed after `in`", token)
        raise self.error(
            f"expected a value (a number, text, field or function call), found {token.describe()}",
            token,
            self.hint_for(token),
        )

    def call(self, name: Token) -> Node:
        self.expect(Kind.OPERATOR, "(", "`(`")
        args: list[Node] = []
        keywords: list[tuple[str, Node]] = []
        with self.nested():
            while not self.at(Kind.OPERATOR, ")"):
                if args or keywords:
                    self.expect(Kind.OPERATOR, ",", f"`,` or `)` in the call of `{name.text}`")
                keyword = self.token
                if keyword.kind is Kind.NAME and self.tokens[self.index + 1].text == "=":
                    self.index += 2
                    keywords.append((keyword.text, self.or_expr()))
                elif keywords:
                    raise self.error(
                        "a positional argument cannot follow a keyword argument", keyword
                    )
                else:
                    args.append(self.or_expr())
        self.advance()
        span = Span(name.start, self.tokens[self.index - 1].end)
        return self.node(Call(name.text, tuple(args), tuple(keywords), span=span))

    def list_items(self) -> tuple[Constant, ...]:
        opening = self.expect(Kind.OPERATOR, "[", "a list `[...]` after `in`")
        if self.at(Kind.OPERATOR, "]"):
            raise self.error("an empty list never matches", opening, "give at least one value")
        items: list[Constant] = []
        while True:
            items.append(self.list_item())
            if not self.accept(Kind.OPERATOR, ","):
                break
        self.expect(
            Kind.OPERATOR, "]", f"`,` or `]` to close the list at column {opening.start + 1}"
        )
        return tuple(items)

    def list_item(self) -> Constant:
        sign = self.accept(Kind.OPERATOR, "-")
        literal = self.advance()
        if sign and literal.kind is Kind.NUMBER:
            return Constant(-cast(float, literal.value), span=Span(sign.start, literal.end))
        if not sign and literal.kind in (Kind.NUMBER, Kind.STRING):
            return Constant(literal.value, span=Span(literal.start, literal.end))
        if not sign and literal.kind is Kind.KEYWORD and literal.text in _CONSTANT_KEYWORDS:
            return Constant(_CONSTANT_KEYWORDS[literal.text], span=Span(literal.start, literal.end))
        raise self.error(
            f"expected a literal (number, text, true, false or null) in the list, "
            f"found {literal.describe()}",
            literal,
        )
