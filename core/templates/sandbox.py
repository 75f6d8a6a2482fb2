"""The environment templates are compiled in: Jinja2's immutable sandbox, with limits.

The sandbox already refuses private attributes (``__class__``, ``_x``),
unsafe callables and changes to lists and dicts. On top of it:

- Only ``range`` is global (``cycler``, ``joiner``, ``namespace``,
  ``lipsum`` and ``dict`` are gone); undefined names raise (``StrictUndefined``);
  ``include``, ``import`` and ``extends`` are refused: each file stands alone.
- Time: every loop's items, every call, operator and filter checks the
  render's deadline (:mod:`core.templates.budget`). Loops are guarded by
  rewriting the parsed template: each ``for`` iterates a guard around its
  sequence, so even a loop that prints nothing and calls nothing stops.
- Memory: ``*``, ``**``, ``+`` and ``%`` are intercepted and refuse results
  past the limits before computing them; calls of text and list methods
  refuse size arguments and amplifying arguments (``'x'.ljust(10**9)``,
  ``s.replace('a', big)``); ``str.format`` is refused (use ``~`` or the
  ``format`` filter); joins of text (``~``, captured blocks, macros) and
  printed values are sized before they are built.
- Nothing is evaluated at compile time (no constant folding), so all work
  happens inside a render, under its deadline.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, MappingView, Sequence, Set
from datetime import date
from typing import Any, cast

from jinja2 import (
    StrictUndefined,
    Template,
    TemplateSyntaxError,
    nodes,
    pass_eval_context,
    select_autoescape,
)
from jinja2.exceptions import SecurityError
from jinja2.ext import Extension
from jinja2.nodes import EvalContext
from jinja2.runtime import Context, LoopContext, Undefined, markup_join, str_join
from jinja2.sandbox import MAX_RANGE, ImmutableSandboxedEnvironment, safe_range
from jinja2.visitor import NodeTransformer

from core.templates.bounds import (
    expandtabs_bound,
    join_bound,
    printf_bound,
    replace_bound,
    translate_bound,
)
from core.templates.budget import (
    MAX_INT_BITS,
    TooLarge,
    bounded_list,
    check_size,
    check_time,
    rendered_size,
    timed,
)
from core.templates.context import Recommendations, TrackedLink
from core.templates.filters import guarded_filters

AUTOESCAPED_SUFFIX = "html.j2"
"""Files whose name ends so are HTML and escape every value they print."""

_PLAIN_VALUES = (str, bytes, int, float, list, tuple, dict)
"""Values whose methods a template may call, with their arguments checked."""

_CONTEXT_FUNCTIONS = frozenset({TrackedLink, Recommendations})
"""The callables of :func:`core.templates.message_context`, called without the sandbox's
general checks (a link in every message: they cost more than the link)."""

_DICT_ATTRIBUTES = frozenset(dir(dict))
"""``customer.items`` is the method, as Jinja2 has it; any other name is a key."""

_SIZED_BY_NUMBERS = (str, bytes)
"""Values whose methods take whole numbers as lengths (``ljust(n)``, ``zfill(n)``)."""

_SIZE_BOUNDS: dict[str, Callable[..., int]] = {
    "replace": replace_bound,
    "expandtabs": expandtabs_bound,
    "translate": translate_bound,
}
"""Text methods that can make their result much longer than their text."""


class TemplateEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox every template of a :class:`core.templates.Templates` compiles in."""

    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars
        """The longest text a template may build or print."""
        self.max_items = MAX_RANGE
        """The longest list a template may build (the sandbox's ``range`` limit)."""
        super().__init__(
            autoescape=select_autoescape(
                enabled_extensions=(AUTOESCAPED_SUFFIX,), default_for_string=False
            ),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            finalize=self._printable,
            optimized=False,
            extensions=[_Guards],
            auto_reload=False,
        )
        self.globals = {"range": safe_range}
        self.filters = guarded_filters(max_chars, self.max_items)
        # Captured output (macros, `set` and `filter` blocks) is joined with this.
        self.concat = self._bounded_join  # type: ignore[method-assign]

    def compile_template(self, source: str, name: str, filename: str) -> Template:
        """Parse ``source``, refuse what templates may not do, add the loop and join
        guards and compile the result; raises :class:`TemplateSyntaxError`."""
        tree = self.parse(source, name, filename)
        for node in tree.find_all((nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)):
            tag = {nodes.Extends: "extends", nodes.Include: "include"}.get(type(node), "import")
            raise TemplateSyntaxError(
                f"`{tag}` is not available: each template file stands alone",
                node.lineno,
                name,
                filename,
            )
        guarded = cast(nodes.Template, _AddGuards().visit(tree))
        guarded.set_environment(self)
        code = self.compile(guarded, name, filename)
        # A plain dict, not the usual ChainMap: every render copies the globals, and
        # copying a ChainMap cost a third of a render. Nothing changes them after this.
        return self.template_class.from_code(self, code, dict(self.globals))

    @pass_eval_context
    def _printable(self, eval_ctx: EvalContext, value: Any) -> Any:
        """What ``{{ value }}`` prints: nothing for None; data as it is, a collection only
        if printing it stays under the limit (a list of one long text many times would
        not); a function or a lazy sequence not at all, since printing one is a mistake
        that would show a Python name to the customer."""
        if value is None:
            return ""
        if isinstance(value, str | int | float | date | Undefined):
            return value  # an undefined value raises its error when printed
        if not isinstance(value, Sequence | Mapping | Set | MappingView):
            raise TypeError(
                f"a {type(value).__name__} cannot be printed; call a function, as in "
                "link('https://...'), or make a sequence text with |join(', ')"
            )
        if rendered_size(value, self.max_chars) > self.max_chars:
            raise TooLarge(
                f"printing that value would take more than {self.max_chars:,} characters"
            )
        return value

    def _bounded_join(self, parts: Iterable[str]) -> str:
        collected = list(parts)
        total = sum(map(len, collected))
        if total > self.max_chars:
            raise TooLarge(f"a block of {total:,} characters is over {self.max_chars:,}")
        return "".join(collected)

    def getattr(self, obj: Any, attribute: str) -> Any:
        """``obj.attribute``; for the context's dicts, straight to the key (the sandbox's
        way, an attribute lookup that fails first, cost a tenth of a render)."""
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """``+ * ** %``, refused when the result would pass the limits."""
        check_time()
        if operator == "%" and isinstance(left, str):
            if printf_bound(left, right, self.max_chars) > self.max_chars:
                raise TooLarge(f"formatting would make more than {self.max_chars:,} characters")
        elif operator == "**":
            _check_power(left, right)
        elif operator == "*":
            self._check_product(left, right)
        elif operator == "+":
            self._check_sum(left, right)
        result = self.binop_table[operator](left, right)
        check_size(result, self.max_chars, self.max_items)
        return result

    def _check_product(self, left: Any, right: Any) -> None:
        if isinstance(left, int) and isinstance(right, int):
            if left.bit_length() + right.bit_length() > MAX_INT_BITS:
                raise TooLarge(f"a number of more than {MAX_INT_BITS:,} bits")
            return
        sequence, times = (left, right) if isinstance(right, int) else (right, left)
        if isinstance(times, int) and isinstance(sequence, str | bytes | list | tuple):
            self._check_length(sequence, len(sequence) * max(times, 0))

    def _check_sum(self, left: Any, right: Any) -> None:
        if isinstance(left, str | bytes | list | tuple) and isinstance(
            right, str | bytes | list | tuple
        ):
            self._check_length(left, len(left) + len(right))

    def _check_length(self, like: Any, length: int) -> None:
        text = isinstance(like, str | bytes)
        limit = self.max_chars if text else self.max_items
        if length > limit:
            unit = "characters" if text else "items"
            raise TooLarge(f"{length:,} {unit} is over the limit of {limit:,}")

    def call(
        __self,
        __context: Context,
        __obj: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        """Every call a template makes: methods with checked arguments, no ``str.format``."""
        check_time()
        if type(__obj) in _CONTEXT_FUNCTIONS:  # safe, and they take no context: the quick way
            kwargs.pop("_loop_vars", None)  # what Jinja2 hands a macro called in a loop
            kwargs.pop("_block_vars", None)
            result = __obj(*args, **kwargs)
            check_size(result, __self.max_chars, __self.max_items)
            return result
        if _is_str_format(__obj):
            raise SecurityError(
                "str.format is not available in templates; join text with ~ "
                "or use the format filter"
            )
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, _PLAIN_VALUES):
            args = __self._checked_method_arguments(owner, __obj.__name__, args, kwargs)
        elif isinstance(__obj, LoopContext) and args:  # loop(children) in a recursive loop
            args = (timed(args[0]), *args[1:])
        result = super().call(__context, __obj, *args, **kwargs)
        check_size(result, __self.max_chars, __self.max_items)
        return result

    def _checked_method_arguments(
        self, owner: Any, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[Any, ...]:
        """The arguments of ``owner.method(...)``, refused when too large for the result
        to stay under the limits (a lazy sequence becomes a bounded list)."""
        args = tuple(
            bounded_list(a, self.max_items) if isinstance(a, Iterator) else a for a in args
        )
        if isinstance(owner, _SIZED_BY_NUMBERS) or method == "to_bytes":
            for argument in (*args, *kwargs.values()):
                if isinstance(argument, int) and abs(argument) > self.max_chars:
                    raise TooLarge(
                        f"{method}({argument:,}) is over the limit of {self.max_chars:,}"
                    )
        if isinstance(owner, str | bytes):
            for argument in (*args, *kwargs.values()):
                if rendered_size(argument, self.max_chars) > self.max_chars:
                    raise TooLarge(f"{method}() was given more than {self.max_chars:,} characters")
            if method == "join" and args:
                bound = join_bound(owner, args[0], self.max_chars)
            elif method in _SIZE_BOUNDS:
                bound = _SIZE_BOUNDS[method](owner, *args, **kwargs)
            else:
                bound = 0
            if bound > self.max_chars:
                raise TooLarge(f"{method}() would make more than {self.max_chars:,} characters")
        return args


class _Guards(Extension):
    """What the rewritten templates call; a template cannot name it (no syntax reaches an
    extension's attributes), only the rewrite in :class:`_AddGuards` does."""

    def loop(self, items: Any) -> Any:
        """The items of a ``for`` loop, checking the deadline before each one."""
        return timed(items)

    @pass_eval_context
    def join(self, eval_ctx: EvalContext, *parts: Any) -> str:
        """``a ~ b ~ c``, sized before it is built (escaping as Jinja2 would)."""
        limit = cast(TemplateEnvironment, self.environment).max_chars
        total = 0
        for part in parts:
            total += rendered_size(part, limit)
            if total > limit:
                raise TooLarge(f"joining would make more than {limit:,} characters")
        return markup_join(parts) if eval_ctx.autoescape else str_join(parts)


class _AddGuards(NodeTransformer):
    """Rewrites ``for x in items`` as ``for x in guard.loop(items)`` and ``a ~ b`` as
    ``guard.join(a, b)``."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = _guard_call("loop", [cast(nodes.Expr, node.iter)], node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _guard_call("join", list(node.nodes), node.lineno)


def _guard_call(name: str, args: list[nodes.Expr], lineno: int) -> nodes.Call:
    guard = nodes.ExtensionAttribute(_Guards.identifier, name, lineno=lineno)
    return nodes.Call(guard, args, [], None, None, lineno=lineno)


def _check_power(base: Any, exponent: Any) -> None:
    if (
        isinstance(base, int)
        and isinstance(exponent, int)
        and exponent > 0
        and abs(base) > 1
        and base.bit_length() * exponent > MAX_INT_BITS
    ):
        raise TooLarge(f"a number of more than {MAX_INT_BITS:,} bits")


def _is_str_format(function: Any) -> bool:
    """Whether ``function`` is the sandbox's stand-in for ``str.format``/``format_map``."""
    wrapped = getattr(function, "__wrapped__", None)
    return isinstance(getattr(wrapped, "__self__", None), str) and getattr(
        wrapped, "__name__", None
    ) in ("format", "format_map")
