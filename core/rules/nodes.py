"""The rule language's syntax tree: what the parser builds and the checker annotates.

Nodes are immutable. Positions (``span``), inferred types (``type``) and the
nesting ``depth`` are left out of equality, so a parsed tree compares equal
to a tree built by hand (the property tests rely on it).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from enum import Enum
from typing import Literal


class Type(Enum):
    """The type of a value in a rule."""

    NUMBER = "number"
    TEXT = "text"
    BOOL = "bool"
    TIME = "time"
    DATE = "date"
    DURATION = "duration"
    ANY = "any"
    """Any value at all: what ``is null`` asks of its operand, so ``attr(x) is null``
    tests whether the attribute is missing or JSON null, whatever its type."""


@dataclass(frozen=True)
class Span:
    """Where a node is in the rule text: offsets ``[start, end)``."""

    start: int
    end: int


ConstantValue = float | str | bool | None
CompareOp = Literal["==", "!=", "<", "<=", ">", ">="]
ArithmeticOp = Literal["+", "-", "*", "/"]


@dataclass(frozen=True)
class Node:
    """Base of every node: position, type (set by the checker) and nesting depth.

    Trees built by hand (tests, generators) may leave ``span`` out.
    """

    span: Span = field(default=Span(0, 0), kw_only=True, compare=False, repr=False)
    type: Type | None = field(default=None, kw_only=True, compare=False)
    depth: int = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Computed bottom-up as nodes are built, so the depth limit is checked
        # without recursing over a tree that may be too deep to recurse over.
        object.__setattr__(self, "depth", 1 + max((c.depth for c in self.children()), default=0))

    def children(self) -> tuple[Node, ...]:
        return ()


@dataclass(frozen=True)
class Constant(Node):
    """A literal (numbers are floats), or a parameter after the checker resolved it."""

    value: ConstantValue


@dataclass(frozen=True)
class Name(Node):
    """A bare name as parsed: the checker turns it into a field or a parameter's constant."""

    name: str


@dataclass(frozen=True)
class Field(Node):
    """A field of the catalogue (:mod:`core.rules.fields`)."""

    name: str


@dataclass(frozen=True)
class Call(Node):
    """A function call; after checking, only functions without a dedicated node remain."""

    name: str
    args: tuple[Node, ...]
    keywords: tuple[tuple[str, Node], ...] = ()

    def children(self) -> tuple[Node, ...]:
        return self.args + tuple(value for _, value in self.keywords)


@dataclass(frozen=True)
class Attr(Node):
    """``attr(key)`` after checking: the JSON attribute read as ``type``."""

    key: str


@dataclass(frozen=True)
class HasEvent(Node):
    """``has_event(event_type, within=...)`` after checking; ``within`` None: any time."""

    event_type: str
    within: timedelta | None


@dataclass(frozen=True)
class Negate(Node):
    """Unary minus."""

    operand: Node

    def children(self) -> tuple[Node, ...]:
        return (self.operand,)


@dataclass(frozen=True)
class Not(Node):
    """``not x`` (SQL three-valued logic: ``not unknown`` is unknown)."""

    operand: Node

    def children(self) -> tuple[Node, ...]:
        return (self.operand,)


@dataclass(frozen=True)
class Logical(Node):
    """A chain of ``and`` or of ``or``, kept flat so long chains stay shallow."""

    op: Literal["and", "or"]
    operands: tuple[Node, ...]

    def children(self) -> tuple[Node, ...]:
        return self.operands


@dataclass(frozen=True)
class Arithmetic(Node):
    """``left op right`` on numbers."""

    op: ArithmeticOp
    left: Node
    right: Node

    def children(self) -> tuple[Node, ...]:
        return (self.left, self.right)


@dataclass(frozen=True)
class Comparison(Node):
    """``left op right``; comparisons do not chain."""

    op: CompareOp
    left: Node
    right: Node

    def children(self) -> tuple[Node, ...]:
        return (self.left, self.right)


@dataclass(frozen=True)
class InList(Node):
    """``operand [not] in [items]``; items are literals."""

    operand: Node
    items: tuple[Constant, ...]
    negated: bool = False

    def children(self) -> tuple[Node, ...]:
        return (self.operand, *self.items)


@dataclass(frozen=True)
class Between(Node):
    """``operand [not] between low and high``: ``operand >= low and operand <= high``."""

    operand: Node
    low: Node
    high: Node
    negated: bool = False

    def children(self) -> tuple[Node, ...]:
        return (self.operand, self.low, self.high)


@dataclass(frozen=True)
class IsNull(Node):
    """``operand is [not] null``."""

    operand: Node
    negated: bool = False

    def children(self) -> tuple[Node, ...]:
        return (self.operand,)


def walk(root: Node) -> Iterator[Node]:
    """Every node of the tree, parents before children."""
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(node.children()))
