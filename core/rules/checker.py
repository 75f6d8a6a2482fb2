"""The type checker: resolves names, checks every operator and call, types ``attr()``.

It turns the parser's tree into a typed tree: names become fields or
parameter constants, ``attr()`` and ``has_event()`` become dedicated nodes,
and every node gets its :class:`Type`. Types flow from the side that has one
to the side that needs one: ``attr("tier") == "gold"`` reads the attribute
as text because it is compared with text.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import cast

from core.durations import parse_duration
from core.rules.errors import RuleError
from core.rules.fields import FIELDS, FieldSpec
from core.rules.functions import FUNCTION_NAMES, FUNCTIONS, FunctionSpec
from core.rules.nodes import (
    Arithmetic,
    Attr,
    Between,
    Call,
    Comparison,
    Constant,
    ConstantValue,
    Field,
    HasEvent,
    InList,
    IsNull,
    Logical,
    Name,
    Negate,
    Node,
    Not,
    Type,
)

ParamValue = float | int | str | bool
"""A program parameter's value: a rule reads it as a constant of the same type."""

ATTRIBUTE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")
MAX_WITHIN = timedelta(days=36_525)
"""A hundred years: longer windows mean "ever", which is `has_event(type)` without `within`."""

_ORDERED = frozenset({Type.NUMBER, Type.TEXT, Type.TIME, Type.DATE})
_ATTRIBUTE_TYPES = frozenset({Type.NUMBER, Type.TEXT, Type.BOOL, Type.ANY})
_WANTED = {
    Type.NUMBER: "a number",
    Type.TEXT: "text",
    Type.BOOL: "a condition (true or false)",
    Type.TIME: "a time",
    Type.DATE: "a date",
    Type.DURATION: 'a duration such as "30m", "12h", "1d" or "2w"',
}


def check(
    tree: Node,
    text: str,
    params: Mapping[str, ParamValue],
    fields: Mapping[str, FieldSpec] = FIELDS,
) -> Node:
    """Type-check the parsed ``tree`` of ``text``; the result is a typed tree of type bool.

    ``fields`` are the names the rule may read: the customer catalogue, or another one
    such as :data:`core.rules.fields.EVENT_FIELDS`, where ``has_event`` does not apply.
    """
    checker = _Checker(text, _constants(params, fields), fields)
    typed = checker.check(tree, Type.BOOL)
    if typed.type is not Type.BOOL:
        raise checker.error(
            f"a rule must be a condition (true or false), found {checker.describe(typed)}",
            typed,
            "compare it with something, e.g. purchase_count > 0",
        )
    return typed


def _constants(
    params: Mapping[str, ParamValue], fields: Mapping[str, FieldSpec]
) -> dict[str, tuple[ConstantValue, Type]]:
    """Parameters as typed constants, refusing names that would hide a field or function."""
    constants: dict[str, tuple[ConstantValue, Type]] = {}
    for name, value in params.items():
        if name in fields or name in FUNCTIONS:
            kind = "field" if name in fields else "function"
            raise RuleError(
                f"parameter `{name}` has the name of a {kind}", hint="rename the parameter"
            )
        if isinstance(value, bool):
            constants[name] = (value, Type.BOOL)
        elif isinstance(value, int | float) and math.isfinite(value):
            constants[name] = (float(value), Type.NUMBER)
        elif isinstance(value, str):
            constants[name] = (value, Type.TEXT)
        else:
            raise RuleError(
                f"parameter `{name}` is {value!r}; parameters are finite numbers, text or booleans"
            )
    return constants


def _determined(node: Node) -> bool:
    """Whether a node has a type of its own, rather than taking one from its context."""
    if isinstance(node, Constant):
        return node.value is not None
    if isinstance(node, Call) and node.name == "attr":
        return False
    if isinstance(node, Call) and node.name == "coalesce":
        return any(_determined(arg) for arg in node.args)
    return True


class _Checker:
    def __init__(
        self,
        text: str,
        constants: Mapping[str, tuple[ConstantValue, Type]],
        fields: Mapping[str, FieldSpec],
    ) -> None:
        self.text = text
        self.constants = constants
        self.fields = fields

    def error(self, problem: str, node: Node, hint: str | None = None) -> RuleError:
        return RuleError(problem, text=self.text, offset=node.span.start, hint=hint)

    def source(self, node: Node) -> str:
        """The node's source text as messages quote it: literals as written, the rest in `...`."""
        source = self.text[node.span.start : node.span.end]
        if len(source) > 40:
            source = source[:37] + "..."
        return source if source.startswith(('"', "'")) else f"`{source}`"

    def describe(self, node: Node) -> str:
        """A typed node as messages name it, e.g. ``number `revenue_total```."""
        kind = node.type.value if node.type else "value"
        return f"{kind} {self.source(node)}"

    def check(self, node: Node, hint: Type | None) -> Node:
        """The typed ``node``; ``hint`` is the type its context expects, when it has one."""
        match node:
            case Constant(value=None):
                return replace(node, type=self.hint_for(node, hint))
            case Constant(value=bool()):
                return replace(node, type=Type.BOOL)
            case Constant(value=float()):
                return replace(node, type=Type.NUMBER)
            case Constant(value=str()):
                return replace(node, type=Type.TEXT)
            case Name():
                return self.name(node)
            case Call():
                return self.call(node, hint)
            case Negate():
                operand = self.expect(node.operand, Type.NUMBER, "`-`")
                return Negate(operand, span=node.span, type=Type.NUMBER)
            case Not():
                operand = self.expect(node.operand, Type.BOOL, "`not`")
                return Not(operand, span=node.span, type=Type.BOOL)
            case Logical():
                operands = tuple(self.expect(o, Type.BOOL, f"`{node.op}`") for o in node.operands)
                return Logical(node.op, operands, span=node.span, type=Type.BOOL)
            case Arithmetic():
                left = self.expect(node.left, Type.NUMBER, f"`{node.op}`")
                right = self.expect(node.right, Type.NUMBER, f"`{node.op}`")
                return Arithmetic(node.op, left, right, span=node.span, type=Type.NUMBER)
            case Comparison():
                left, right = self.comparable([node.left, node.right], node.op)
                return Comparison(node.op, left, right, span=node.span, type=Type.BOOL)
            case Between():
                operand, low, high = self.comparable([node.operand, node.low, node.high], "between")
                return Between(operand, low, high, node.negated, span=node.span, type=Type.BOOL)
            case InList():
                operand, *items = self.comparable([node.operand, *node.items], "in")
                constants = tuple(cast(Constant, item) for item in items)
                return InList(operand, constants, node.negated, span=node.span, type=Type.BOOL)
            case IsNull():
                operand = self.check(node.operand, Type.ANY)
                return IsNull(operand, node.negated, span=node.span, type=Type.BOOL)
        raise TypeError(f"not a parsed rule node: {node!r}")

    def hint_for(self, node: Node, hint: Type | None) -> Type:
        """The type a node without one of its own takes from its context."""
        if hint is None:
            raise self.error(
                f"cannot tell whether {self.source(node)} is text, a number or a condition here",
                node,
                'compare attr() and null with a literal or a field, e.g. attr("tier") == "gold"',
            )
        return hint

    def expect(self, node: Node, wanted: Type, where: str) -> Node:
        typed = self.check(node, wanted)
        if typed.type is not wanted:
            raise self.error(
                f"{where} needs {_WANTED[wanted]}, found {self.describe(typed)}", typed
            )
        return typed

    def unify(self, nodes: Sequence[Node], hint: Type | None) -> list[Node]:
        """Type ``nodes`` that must share a type: the first one with a type gives it to the rest."""
        anchor = next((n for n in nodes if _determined(n)), None)
        typed_anchor = self.check(anchor, None) if anchor is not None else None
        kind = typed_anchor.type if typed_anchor is not None else hint
        return [
            typed_anchor if n is anchor and typed_anchor else self.check(n, kind) for n in nodes
        ]

    def comparable(self, nodes: Sequence[Node], op: str) -> list[Node]:
        """Operands of a comparison, ``between`` or ``in``: one type, orderable for ordering."""
        for node in nodes:
            if isinstance(node, Constant) and node.value is None and op != "in":
                raise self.error(
                    "comparing with null is always unknown",
                    node,
                    "use `is null` or `is not null`",
                )
        typed = self.unify(nodes, None)
        first = typed[0]
        for other in typed[1:]:
            if other.type is not first.type:
                raise self.error(
                    f"cannot compare {self.describe(first)} with {self.describe(other)}", other
                )
        if op in ("<", "<=", ">", ">=", "between") and first.type not in _ORDERED:
            raise self.error(
                f"cannot order {self.describe(first)} with `{op}`",
                first,
                "only `==`, `!=` and `in` apply to conditions",
            )
        return typed

    def name(self, node: Name) -> Node:
        spec = self.fields.get(node.name)
        if spec is not None:
            return Field(node.name, span=node.span, type=spec.type)
        if node.name in self.constants:
            value, kind = self.constants[node.name]
            return Constant(value, span=node.span, type=kind)
        if node.name in FUNCTIONS:
            signature = FUNCTIONS[node.name].signature()
            raise self.error(f"`{node.name}` is a function", node, f"call it: {signature}")
        raise self.error(
            f"unknown field `{node.name}`",
            node,
            _suggestion(node.name, [*self.fields, *self.constants]),
        )

    def call(self, node: Call, hint: Type | None) -> Node:
        spec = FUNCTIONS.get(node.name)
        if spec is None:
            raise self.error(
                f"unknown function `{node.name}`",
                node,
                _suggestion(node.name, FUNCTION_NAMES)
                or "the functions are " + ", ".join(FUNCTION_NAMES),
            )
        args = self.bind(spec, node)
        if spec.name == "attr":
            return self.attr(node, args["name"], hint)
        if spec.name == "has_event":
            return self.has_event(node, args["type"], args.get("within"))
        if spec.name == "coalesce":
            a, b = self.unify([args["a"], args["b"]], hint)
            if a.type is not b.type:
                raise self.error(
                    f"`coalesce` needs two values of one type, found {self.describe(a)} "
                    f"and {self.describe(b)}",
                    b,
                )
            return Call(spec.name, (a, b), span=node.span, type=a.type)
        typed: list[Node] = []
        for parameter in spec.parameters:
            arg = self.check(args[parameter.name], parameter.types[0])
            if arg.type not in parameter.types:
                wanted = " or ".join(_WANTED[t] for t in parameter.types)
                raise self.error(
                    f"`{spec.name}` needs {wanted} for `{parameter.name}`, "
                    f"found {self.describe(arg)}",
                    arg,
                )
            typed.append(arg)
        return Call(spec.name, tuple(typed), span=node.span, type=spec.returns)

    def bind(self, spec: FunctionSpec, node: Call) -> dict[str, Node]:
        """Match positional and keyword arguments to the parameters, like Python does."""
        names = [p.name for p in spec.parameters]
        if len(node.args) > len(names):
            raise self.error(
                f"`{spec.name}` takes at most {len(names)} argument(s), found {len(node.args)}",
                node.args[len(names)],
                f"it is {spec.signature()}",
            )
        args = dict(zip(names, node.args, strict=False))
        for keyword, value in node.keywords:
            if keyword not in names:
                raise self.error(
                    f"`{spec.name}` has no argument `{keyword}`", value, f"it is {spec.signature()}"
                )
            if keyword in args:
                raise self.error(f"argument `{keyword}` given twice", value)
            args[keyword] = value
        missing = [p.name for p in spec.parameters if not p.optional and p.name not in args]
        if missing:
            closing = replace(node, span=replace(node.span, start=node.span.end - 1))
            raise self.error(
                f"`{spec.name}` is missing its argument `{missing[0]}`",
                closing,
                f"it is {spec.signature()}",
            )
        return args

    def text_constant(self, node: Node, function: str, parameter: str) -> str:
        typed = self.check(node, Type.TEXT)
        if not (isinstance(typed, Constant) and isinstance(typed.value, str)):
            raise self.error(
                f"`{function}` needs a text literal for `{parameter}`, "
                f"found {self.describe(typed)}",
                typed,
            )
        return typed.value

    def attr(self, node: Call, name: Node, hint: Type | None) -> Attr:
        key = self.text_constant(name, "attr", "name")
        if not ATTRIBUTE_NAME.fullmatch(key):
            raise self.error(
                f"attribute name {self.source(name)} is not allowed",
                name,
                "names start with a letter or `_` and have up to 64 letters, digits, "
                "`_`, `.` or `-`",
            )
        kind = self.hint_for(node, hint)
        if kind not in _ATTRIBUTE_TYPES:
            raise self.error(
                f"{self.source(node)} cannot be {_WANTED[kind]}",
                node,
                "attributes are text, numbers or booleans",
            )
        return Attr(key, span=node.span, type=kind)

    def has_event(self, node: Call, event_type: Node, within: Node | None) -> HasEvent:
        if self.fields is not FIELDS:
            raise self.error(
                "`has_event` reads a customer's events, not this one's",
                node,
                "move it to the rule on the customer",
            )
        kind = self.text_constant(event_type, "has_event", "type")
        window = None
        if within is not None:
            text = self.text_constant(within, "has_event", "within")
            window = parse_duration(text)
            if window is None:
                raise self.error(
                    f"`within` needs {_WANTED[Type.DURATION]}, found {self.source(within)}",
                    within,
                )
            if not timedelta(0) < window <= MAX_WITHIN:
                raise self.error(
                    f"`within` must be more than 0 and at most {MAX_WITHIN.days} days, "
                    f"found {self.source(within)}",
                    within,
                    "leave `within` out to mean any time",
                )
        return HasEvent(kind, window, span=node.span, type=Type.BOOL)


def _suggestion(name: str, candidates: Sequence[str]) -> str | None:
    close = difflib.get_close_matches(name, candidates, n=1)
    return f"did you mean `{close[0]}`?" if close else None
