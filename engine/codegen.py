"""Generate Python source from checked expression IR, and compile it.

Only this module produces code, and it produces it from the typed IR of ``engine.expr``,
never from author text: literals enter the source as ``repr()`` of checked constants or as
names bound in the generated module's namespace.

Three-valued logic costs almost nothing here because each boolean expression is emitted in
the mode its context needs:

    val(e)    a Python expression giving the value, or None for unknown
    true(e)   a Python bool: "e is true"        (what a ``when:`` needs)
    false(e)  a Python bool: "e is false"       (what ``not e`` and ``or`` need)

``true(a and b)`` is ``true(a) and true(b)``, ``false(a and b)`` is ``false(a) or false(b)``,
``true(not a)`` is ``false(a)``; a comparison is true only when both sides are known. Each IR
node is emitted once per mode it is used in, so the generated size is linear in the IR.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

from engine import runtime
from engine.builtins import BUILTINS, Builtin
from engine.expr import (
    Arith,
    BoolOp,
    Call,
    Compare,
    Const,
    ListConst,
    Missing,
    Neg,
    Node,
    Not,
    Quantifier,
    Slot,
    Var,
    VarAttr,
)
from engine.generated import slot_name

# Operator → the runtime helper generated code calls where a float can come out.
FINITE_HELPERS = {"+": "_add", "-": "_sub", "*": "_mul", "/": "_div", "%": "_mod"}


class Namespace:
    """The globals of the generated module: runtime helpers plus named constants."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {
            "__builtins__": {
                "len": len,
                "abs": abs,
                "min": min,
                "max": max,
                "round": round,
                "any": any,
                "all": all,
                "None": None,
                "True": True,
                "False": False,
                # What generated code catches: a missing key, and what the entry point maps
                # to EvaluationError.
                "KeyError": KeyError,
                "ArithmeticError": ArithmeticError,
                "ValueError": ValueError,
                "RecursionError": RecursionError,
            },
            **runtime.HELPERS,
        }
        self._by_key: dict[Any, str] = {}

    def add(self, value: Any, key: Any = None) -> str:
        """Bind ``value`` to a fresh name (reusing the name for an equal ``key``)."""
        if key is not None and key in self._by_key:
            return self._by_key[key]
        name = f"_K{len(self.values)}"
        self.values[name] = value
        if key is not None:
            self._by_key[key] = name
        return name

    def compile(self, source: str, filename: str) -> dict[str, Any]:
        code = compile(source, filename, "exec")
        exec(code, self.values)  # the source is generated from checked IR only
        return self.values


class Emitter:
    """Emits expressions for one generated function; records which slots it reads."""

    def __init__(self, ns: Namespace) -> None:
        self.ns = ns
        self.used: set[int] = set()
        self._temps = 0
        # Slots the surrounding code has already checked are not None: no guards for them.
        self.present: frozenset[int] = frozenset()

    def nullable(self, n: Node) -> bool:
        """Whether ``n`` can be unknown here."""
        if isinstance(n, Slot) and n.index in self.present:
            return False
        return n.nullable

    def tmp(self) -> str:
        self._temps += 1
        return f"_t{self._temps}"

    # -- simple operands need no temporary --------------------------------------------------

    def simple(self, n: Node) -> str | None:
        if isinstance(n, Const):
            return repr(n.value)
        if isinstance(n, Slot):
            self.used.add(n.index)
            return slot_name(n.index)
        if isinstance(n, Var):
            return f"_i_{n.name}"
        if isinstance(n, ListConst):
            return self._list_const(n)
        return None

    def _list_const(self, n: ListConst) -> str:
        try:
            value: Any = frozenset(n.values)
        except TypeError:  # pragma: no cover - list literals hold scalars only
            value = n.values
        return self.ns.add(value, key=("list", n.type.item.kind if n.type.item else None, n.values))

    def _bind(self, n: Node, guards: list[str], *, positive: bool) -> str:
        """Return a name or expression for ``n``, adding its null check to ``guards``.

        ``positive`` guards read "is not None" (to be and-ed), negative ones "is None"
        (to be or-ed).
        """
        name = self.simple(n)
        if name is None:
            if not self.nullable(n):
                return f"({self.val(n)})"
            t = self.tmp()
            guards.append(f"({t} := {self.val(n)}) is {'not ' if positive else ''}None")
            return t
        if self.nullable(n):
            guards.append(f"{name} is {'not ' if positive else ''}None")
        return name

    def _guarded(
        self,
        operands: tuple[Node, ...],
        build: Callable[..., str],
        extra_none: Callable[..., str | None] | None = None,
    ) -> str:
        """val() of an operation that is unknown when any operand is unknown."""
        guards: list[str] = []
        names = [self._bind(o, guards, positive=False) for o in operands]
        if extra_none is not None:
            extra = extra_none(*names)
            if extra:
                guards.append(extra)
        body = build(*names)
        if not guards:
            return f"({body})"
        return f"(None if {' or '.join(guards)} else {body})"

    # -- value mode -------------------------------------------------------------------------

    def val(self, n: Node) -> str:
        name = self.simple(n)
        if name is not None:
            return name
        if isinstance(n, VarAttr):
            getter = self.ns.add(
                runtime.attr_getter(n.attr, n.type.kind), key=("attr", n.attr, n.type.kind)
            )
            return f"{getter}(_i_{n.var})"
        if isinstance(n, Not):
            return self._guarded((n.operand,), lambda a: f"not {a}")
        if isinstance(n, BoolOp):
            helper = "_and3" if n.op == "and" else "_or3"
            return f"{helper}({', '.join(self.val(o) for o in n.operands)})"
        if isinstance(n, Compare):
            return self._guarded((n.left, n.right), lambda a, b: f"{a} {n.op} {b}")
        if isinstance(n, Arith):
            zero = (lambda a, b: f"{b} == 0") if n.op in ("/", "%") else None
            if n.op == "**":
                # Bound only where used: the names of every other constant stay as they were.
                power = self.ns.add(runtime.power, key=("helper", "power"))
                return self._guarded((n.left, n.right), lambda a, b: f"{power}({a}, {b})")
            if n.type.kind == "number":
                # A float can come out: overflow and NaN make it unknown (runtime._finite).
                checked = FINITE_HELPERS[n.op]
                return self._guarded((n.left, n.right), lambda a, b: f"{checked}({a}, {b})", zero)
            return self._guarded((n.left, n.right), lambda a, b: f"{a} {n.op} {b}", zero)
        if isinstance(n, Neg):
            return self._guarded((n.operand,), lambda a: f"-{a}")
        if isinstance(n, Missing):
            return f"({self.val(n.slot)} is None)"
        if isinstance(n, Quantifier):
            return self._quantifier_val(n)
        if isinstance(n, Call):
            return self._call_val(n)
        raise AssertionError(type(n))  # pragma: no cover

    def _call_val(self, n: Call) -> str:
        """val() of a built-in function: the code its entry in engine.builtins emits."""
        fn = BUILTINS[n.name]
        emit = fn.emit
        assert emit is not None, n.name  # the special forms are not Call nodes
        if not fn.guarded:
            return emit(*(self.val(a) for a in n.args))
        literal = () if n.extra is None else (self._literal(fn, n.extra),)
        return self._guarded(n.args, lambda *names: emit(*names, *literal))

    def _literal(self, fn: Builtin, value: Any) -> str:
        """A literal a check kept in ``Call.extra``: its repr, or a name bound to what the
        entry makes of it (a compiled pattern)."""
        if fn.bind is None:
            return repr(value)
        return self.ns.add(fn.bind(value), key=(fn.name, value))

    def _quantifier_val(self, n: Quantifier) -> str:
        helper = "_any3" if n.kind == "any" else "_all3"
        body = self.val(n.body)
        src = self.simple(n.source)
        if src is None:
            t = self.tmp()
            return (
                f"(None if ({t} := {self.val(n.source)}) is None else "
                f"{helper}({body} for _i_{n.var} in {t}))"
            )
        if self.nullable(n.source):
            return f"(None if {src} is None else {helper}({body} for _i_{n.var} in {src}))"
        return f"{helper}({body} for _i_{n.var} in {src})"

    # -- truth modes ------------------------------------------------------------------------

    def true(self, n: Node) -> str:
        return self._truth(n, True)

    def false(self, n: Node) -> str:
        return self._truth(n, False)

    def _truth(self, n: Node, want: bool) -> str:
        if isinstance(n, Const):
            return repr(bool(n.value) is want)
        if isinstance(n, Not):
            return self._truth(n.operand, not want)
        if isinstance(n, BoolOp):
            joiner = " and " if (n.op == "and") is want else " or "
            return "(" + joiner.join(self._truth(o, want) for o in n.operands) + ")"
        if isinstance(n, Missing):
            return f"({self.val(n.slot)} is {'' if want else 'not '}None)"
        if isinstance(n, Compare):
            guards: list[str] = []
            if _null_is_false(n, want) and isinstance(n.left, Slot):
                # None == "gold" and None in {...} are False, which is what "unknown" means
                # when asking whether the comparison is true: the null check is redundant.
                a = self.val(n.left)
            else:
                a = self._bind(n.left, guards, positive=True)
            b = self._bind(n.right, guards, positive=True)
            test = f"{a} {n.op} {b}" if want else f"not ({a} {n.op} {b})"
            return "(" + " and ".join([*guards, test]) + ")"
        if isinstance(n, Quantifier):
            return self._quantifier_truth(n, want)
        return f"({self.val(n)} is {want!r})"

    def _quantifier_truth(self, n: Quantifier, want: bool) -> str:
        # any() is true when some item is true, false when every item is false;
        # all() is true when every item is true, false when some item is false.
        outer = "any" if (n.kind == "any") is want else "all"
        body = self._truth(n.body, want)
        src = self.simple(n.source)
        if src is None:
            t = self.tmp()
            return (
                f"(({t} := {self.val(n.source)}) is not None and "
                f"{outer}({body} for _i_{n.var} in {t}))"
            )
        guard = f"{src} is not None and " if self.nullable(n.source) else ""
        return f"({guard}{outer}({body} for _i_{n.var} in {src}))"


def null_safe_when_true(n: Compare) -> bool:
    """Whether asking ``n`` true needs no null check on its left side."""
    return _null_is_false(n, True) and isinstance(n.left, Slot)


def _null_is_false(n: Compare, want: bool) -> bool:
    """Whether ``left op right`` (negated unless ``want``) is False, not an error, for None.

    True for ``x == c`` and ``x in [c, ...]`` asked true, and ``x != c`` and ``x not in [...]``
    asked false, when the right side is a constant that is not null.
    """
    if want:
        if n.op not in ("==", "in"):
            return False
    elif n.op not in ("!=", "not in"):
        return False
    right = n.right
    if n.op in ("==", "!="):
        return isinstance(right, Const) and right.value is not None
    # ``None in "abc"`` raises: only list literals (frozensets) are safe.
    return isinstance(right, ListConst) and None not in right.values


class FunctionWriter:
    """Accumulates the lines of one generated function."""

    def __init__(self, header: str) -> None:
        self.lines = [header]
        self.depth = 1

    def line(self, text: str) -> None:
        self.lines.append("    " * self.depth + text)

    def indent(self) -> None:
        self.depth += 1

    def dedent(self) -> None:
        self.depth -= 1

    def source(self) -> str:
        return "\n".join(self.lines) + "\n"


def with_globals(function: Callable[..., Any], **names: Any) -> Callable[..., Any]:
    """A copy of a generated ``function`` whose globals are its own: those it was compiled
    with, and ``names`` bound over them (so one compiled body can serve several owners)."""
    assert isinstance(function, types.FunctionType)
    copy = types.FunctionType(
        function.__code__,
        {**function.__globals__, **names},
        function.__name__,
        function.__defaults__,
        function.__closure__,
    )
    copy.__kwdefaults__ = function.__kwdefaults__
    return copy
