"""The function whitelist: names, parameters, result types and what each one is for.

Only these functions exist in the language. The checker reads the
signatures; the compiler and the reference evaluator each implement every
function once, by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from core.rules.nodes import Type


@dataclass(frozen=True)
class Parameter:
    """One parameter: the types it accepts; ``constant`` ones need a literal or a param."""

    name: str
    types: tuple[Type, ...]
    constant: bool = False
    optional: bool = False

    def describe(self) -> str:
        types = "|".join(t.value for t in self.types)
        return f"{self.name}: {types}" + (" = none" if self.optional else "")


@dataclass(frozen=True)
class FunctionSpec:
    """A function's signature and description.

    ``returns`` is None for the two functions whose type comes from elsewhere:
    ``coalesce`` has the type of its arguments, ``attr`` the type its context
    asks for.
    """

    name: str
    parameters: tuple[Parameter, ...]
    returns: Type | None
    description: str

    def signature(self) -> str:
        """The signature as documentation shows it, e.g. ``lower(s: text) -> text``."""
        returns = self.returns.value if self.returns else "dynamic"
        params = ", ".join(p.describe() for p in self.parameters)
        return f"{self.name}({params}) -> {returns}"


_MOMENT = (Type.TIME, Type.DATE)
_VALUE = (Type.NUMBER, Type.TEXT, Type.BOOL, Type.TIME, Type.DATE)

_SPECS = (
    FunctionSpec(
        "days_since",
        (Parameter("t", _MOMENT),),
        Type.NUMBER,
        "whole days from t to now, rounded down (negative when t is after now); "
        "a date counts from its midnight UTC",
    ),
    FunctionSpec(
        "hours_since",
        (Parameter("t", _MOMENT),),
        Type.NUMBER,
        "whole hours from t to now, rounded down (negative when t is after now)",
    ),
    FunctionSpec(
        "attr",
        (Parameter("name", (Type.TEXT,), constant=True),),
        None,
        "a value from the customer's attributes, typed by its context: compared with "
        "text it is text, with a number a number, alone a bool; null when the stored "
        "JSON value has another type",
    ),
    FunctionSpec(
        "has_event",
        (
            Parameter("type", (Type.TEXT,), constant=True),
            Parameter("within", (Type.DURATION,), constant=True, optional=True),
        ),
        Type.BOOL,
        'whether the customer has an event of this type up to now, within e.g. "30m", '
        '"12h", "1d" or "2w" before now when given',
    ),
    FunctionSpec(
        "coalesce",
        (Parameter("a", _VALUE), Parameter("b", _VALUE)),
        None,
        "a unless it is null, else b (both of the same type)",
    ),
    FunctionSpec(
        "lower",
        (Parameter("s", (Type.TEXT,)),),
        Type.TEXT,
        "s with the ASCII letters A-Z in lower case (the same on every database)",
    ),
    FunctionSpec("abs", (Parameter("x", (Type.NUMBER,)),), Type.NUMBER, "absolute value"),
    FunctionSpec(
        "contains",
        (Parameter("s", (Type.TEXT,)), Parameter("part", (Type.TEXT,))),
        Type.BOOL,
        "whether part occurs in s (case-sensitive)",
    ),
    FunctionSpec(
        "starts_with",
        (Parameter("s", (Type.TEXT,)), Parameter("prefix", (Type.TEXT,))),
        Type.BOOL,
        "whether s begins with prefix (case-sensitive)",
    ),
)

FUNCTIONS: Mapping[str, FunctionSpec] = {spec.name: spec for spec in _SPECS}
"""Every function a rule can call, by name."""

FUNCTION_NAMES: tuple[str, ...] = tuple(FUNCTIONS)
