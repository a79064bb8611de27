"""Expressions: parse author text with ``ast``, check it against the declared fields, build
a typed IR.

Nothing here executes author text. ``check_expression`` accepts only the node kinds listed in
docs/language.md and returns an IR whose every node carries its type and whether it can be
unknown; the code generator (``engine.codegen``) turns that IR into Python source.
"""

from __future__ import annotations

import ast
import difflib
import keyword
import math
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.builtins import BUILTINS, FUNCTIONS, Site
from engine.durations import parse_duration
from engine.ir import (
    BOOLEAN,
    DATETIME,
    INTEGER,
    NUMBER,
    OBJECT,
    SCALAR_TYPES,
    STRING,
    Arith,
    BoolOp,
    Call,
    Compare,
    Const,
    ExpressionError,
    ListConst,
    Missing,
    Neg,
    Node,
    Not,
    Quantifier,
    Slot,
    Type,
    Var,
    VarAttr,
    comparable,
    list_of,
    orderable,
)
from engine.ir import describe as _describe
from engine.ir import error_at as _at
from engine.ir import with_article as _a

# The types and IR are declared in engine.ir; the checker's callers read them from here too.
__all__ = [
    "BOOLEAN",
    "DATETIME",
    "FUNCTIONS",
    "INTEGER",
    "MAX_DEPTH",
    "MAX_EXPRESSION_LENGTH",
    "MAX_INT_LITERAL",
    "MAX_LIST_ITEMS",
    "NUMBER",
    "OBJECT",
    "RESERVED_NAMES",
    "SCALAR_TYPES",
    "STRING",
    "Arith",
    "BoolOp",
    "Call",
    "Checked",
    "Compare",
    "Const",
    "Environment",
    "ExpressionError",
    "FieldInfo",
    "ListConst",
    "Missing",
    "Neg",
    "Node",
    "Not",
    "Quantifier",
    "Slot",
    "Type",
    "Var",
    "VarAttr",
    "check_expression",
    "comparable",
    "list_of",
    "mask_table_ids",
    "orderable",
    "parse_python_expression",
    "value_type",
]

MAX_EXPRESSION_LENGTH = 2_000
MAX_DEPTH = 32
MAX_LIST_ITEMS = 1_000
MAX_INT_LITERAL = 10**18

RESERVED_NAMES = {*FUNCTIONS, "tables", "true", "false", "null", "True", "False", "None"}

# ---------------------------------------------------------------------------------------------
# Environment: what names mean while checking


@dataclass
class FieldInfo:
    path: str
    type: Type


@dataclass
class Environment:
    """What an expression may read. Reading allocates a slot so each value is read once."""

    fields: dict[str, FieldInfo]
    table_outputs: dict[str, dict[str, Type]] = field(default_factory=dict)
    slots: dict[str, Slot] = field(default_factory=dict)
    counters: dict[tuple[str, str], Slot] = field(default_factory=dict)

    def slot(self, path: str, type_: Type) -> Slot:
        found = self.slots.get(path)
        if found is None:
            found = Slot(type_, True, len(self.slots), path)
            self.slots[path] = found
        return found

    def counter(self, event_type: str, within: str) -> Slot:
        key = (event_type, within)
        found = self.counters.get(key)
        if found is None:
            index = len(self.slots)
            found = Slot(INTEGER, False, index, f"count({event_type!r}, within={within!r})")
            self.slots[found.path] = found
            self.counters[key] = found
        return found


@dataclass
class Checked:
    """A checked expression: its IR and the context fields it reads."""

    node: Node
    reads: frozenset[str]


# ---------------------------------------------------------------------------------------------
# Table ids contain '-', which Python reads as minus: mask them before parsing


def mask_table_ids(source: str, table_ids: set[str]) -> tuple[str, dict[str, str]]:
    """Rewrite ``tables.refund-limit.x`` to ``tables.refund_limit.x`` outside string literals.

    The rewrite keeps every column where it was, so error positions stay right; ids never
    contain '_', so the masked name maps back uniquely.
    """
    if "tables." not in source:
        return source, {}
    hyphenated = sorted((t for t in table_ids if "-" in t), key=len, reverse=True)
    out = list(source)
    masked: dict[str, str] = {}
    i, n, quote = 0, len(source), ""
    while i < n:
        ch = source[i]
        if quote:
            if ch == "\\":
                i += 2
                continue
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif source.startswith("tables.", i) and (i == 0 or not _ident_char(source[i - 1])):
            start = i + len("tables.")
            for table_id in hyphenated:
                end = start + len(table_id)
                if source.startswith(table_id, start) and (end == n or source[end] == "."):
                    name = table_id.replace("-", "_")
                    out[start:end] = name
                    masked[name] = table_id
                    i = end
                    break
        i += 1
    return "".join(out), masked


def _ident_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


# ---------------------------------------------------------------------------------------------
# The checker


def check_expression(source: str, env: Environment, *, expect: Type | None = None) -> Checked:
    """Parse and type-check ``source``; raise ExpressionError naming what was expected."""
    if len(source) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(
            f"expression is {len(source)} characters long; the limit is {MAX_EXPRESSION_LENGTH}"
        )
    if not source.strip():
        raise ExpressionError("empty expression")
    # An expression is one logical line: a literal YAML block's newlines become spaces (the
    # same length, so offsets still index the author's text), and leading blanks, which
    # Python would read as an indent, are skipped and counted back into offsets.
    flat = source.replace("\r", " ").replace("\n", " ")
    indent = len(flat) - len(flat.lstrip(" \t"))
    masked, table_names = mask_table_ids(flat[indent:], set(env.table_outputs))
    try:
        tree = parse_python_expression(masked)
        checker = _Checker(env, table_names, flat[indent:])
        node = checker.visit(tree.body)
    except ExpressionError as exc:
        exc.offset += indent
        raise
    if expect is not None and node.type.kind != expect.kind:
        raise ExpressionError(_expected_message(expect, node.type), indent)
    return Checked(node, frozenset(checker.reads))


def parse_python_expression(source: str) -> ast.Expression:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. SyntaxWarning for "1 is 1": refused anyway
            return ast.parse(source, mode="eval")
    except SyntaxError as exc:
        msg = exc.msg
        if "f-string" in msg:
            msg = "f-strings are not allowed"
        elif msg.startswith("invalid syntax"):
            msg = "invalid syntax"
        raise ExpressionError(
            f'{msg}: expected an expression such as customer.tier == "gold"',
            max((exc.offset or 1) - 1, 0),
        ) from None
    except UnicodeError:
        raise ExpressionError("expression contains a character that is not valid text") from None
    except (RecursionError, MemoryError, ValueError, OverflowError):
        raise ExpressionError(
            f"expression nests too deeply; the limit is {MAX_DEPTH} levels"
        ) from None


def _expected_message(expected: Type, got: Type) -> str:
    if expected.kind == "boolean":
        return f"a condition must be true or false, but this expression is {_a(got)}"
    return f"expected {_a(expected)}, but this expression is {_a(got)}"


_FORBIDDEN: dict[type[ast.AST], str] = {
    ast.Lambda: "lambdas are not allowed",
    ast.IfExp: "conditional expressions (x if c else y) are not allowed",
    ast.Dict: "mappings are not allowed in expressions",
    ast.Set: "sets are not allowed; use a list: [a, b]",
    ast.Tuple: "tuples are not allowed; use a list: [a, b]",
    ast.ListComp: "list comprehensions are not allowed; use any(... for x in list) or all(...)",
    ast.SetComp: "set comprehensions are not allowed",
    ast.DictComp: "dict comprehensions are not allowed",
    ast.GeneratorExp: "a generator is allowed only as the argument of any() or all()",
    ast.Await: "await is not allowed",
    ast.Yield: "yield is not allowed",
    ast.YieldFrom: "yield is not allowed",
    ast.JoinedStr: "f-strings are not allowed",
    ast.FormattedValue: "f-strings are not allowed",
    ast.Subscript: "subscripts (x[...]) are not allowed; read declared fields by their path",
    ast.Starred: "starred expressions are not allowed",
    ast.NamedExpr: "assignment expressions (:=) are not allowed",
    ast.Slice: "slices are not allowed",
}

_BINOPS = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.Mod: "%",
    ast.Pow: "**",
}
_CMPOPS = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.In: "in",
    ast.NotIn: "not in",
}


class _Checker:
    def __init__(self, env: Environment, table_names: dict[str, str], source: str = "") -> None:
        self.env = env
        self.table_names = table_names
        # The text as the author wrote it (table ids unmasked), as UTF-8: ast offsets count bytes.
        self.source = source.encode("utf-8", "surrogatepass")
        self.reads: set[str] = set()
        self.vars: dict[str, Type] = {}
        self.depth = 0

    # -- dispatch ---------------------------------------------------------------------------

    def visit(self, node: ast.AST) -> Node:
        handler: Callable[[Any], Node] | None = getattr(self, "visit_" + type(node).__name__, None)
        if handler is not None:
            # Checking depth here, before descending, bounds every recursion that follows.
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise _at(node, f"expression nests more than {MAX_DEPTH} levels deep")
            try:
                return handler(node)
            finally:
                self.depth -= 1
        message = _FORBIDDEN.get(type(node))
        if message is None:
            message = f"{type(node).__name__} is not allowed here"
        raise _at(node, message)

    # -- leaves -----------------------------------------------------------------------------

    def visit_Constant(self, node: ast.Constant) -> Node:
        value = node.value
        if value is None:
            raise _at(
                node,
                "null is always unknown, so nothing can be compared with it; "
                "use missing(field) to test for an absent value",
            )
        if isinstance(value, bool):
            return Const(BOOLEAN, False, value)
        if isinstance(value, int):
            if abs(value) > MAX_INT_LITERAL:
                raise _at(node, f"number literal too large (the limit is {MAX_INT_LITERAL})")
            return Const(INTEGER, False, value)
        if isinstance(value, float):
            if not math.isfinite(value):
                raise _at(node, "number literal is out of range")
            return Const(NUMBER, False, value)
        if isinstance(value, str):
            return Const(STRING, False, value)
        raise _at(
            node,
            f"{type(value).__name__} literals are not allowed; expected a number, "
            "a string, true or false",
        )

    def visit_Name(self, node: ast.Name) -> Node:
        name = node.id
        if name in ("true", "True"):
            return Const(BOOLEAN, False, True)
        if name in ("false", "False"):
            return Const(BOOLEAN, False, False)
        if name in ("null", "None"):
            return self.visit_Constant(
                ast.Constant(None, lineno=node.lineno, col_offset=node.col_offset)
            )
        if name in self.vars:
            return Var(self.vars[name], False, name)
        if name.startswith("__"):
            raise _at(node, f"dunder names such as {name!r} are not allowed")
        if name in FUNCTIONS:
            raise _at(node, f"{name} is a function; call it: {name}(...)")
        under = sorted(p for p in self.env.fields if p.startswith(name + "."))
        if under:
            shown = ", ".join(under[:5]) + (", ..." if len(under) > 5 else "")
            raise _at(node, f"{name!r} is not a field; declared fields under it: {shown}")
        if name == "tables":
            raise _at(node, "expected tables.<table id>.<output>")
        raise _at(
            node,
            f"unknown name {name!r}{self._suggest(name)}; expected a declared "
            "field such as customer.tier",
        )

    def _suggest(self, name: str) -> str:
        candidates = [
            *self.env.fields,
            *self.vars,
            *(f"tables.{t}.{o}" for t, outs in self.env.table_outputs.items() for o in outs),
        ]
        close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.7)
        return f"; did you mean {close[0]!r}?" if close else ""

    def visit_Attribute(self, node: ast.Attribute) -> Node:
        parts: list[str] = []
        current: ast.AST = node
        while isinstance(current, ast.Attribute):
            if current.attr.startswith("__"):
                raise _at(current, f"dunder attributes such as {current.attr!r} are not allowed")
            parts.append(current.attr)
            current = current.value
        if not isinstance(current, ast.Name):
            raise _at(
                node, "attributes are allowed only on declared field paths, such as customer.tier"
            )
        parts.append(current.id)
        parts.reverse()
        root = parts[0]
        if root in self.vars:
            return self._var_attr(node, parts)
        if root == "tables":
            return self._table_output(node, parts)
        path = ".".join(parts)
        info = self.env.fields.get(path)
        if info is None:
            if root.startswith("__"):
                raise _at(node, f"dunder names such as {root!r} are not allowed")
            raise _at(node, f"unknown field {path!r}{self._suggest(path)}")
        self.reads.add(path)
        return self.env.slot(path, info.type)

    def _var_attr(self, node: ast.Attribute, parts: list[str]) -> Node:
        var_type = self.vars[parts[0]]
        if len(parts) != 2 or var_type.kind != "object":
            raise _at(
                node,
                f"{parts[0]!r} is an item of type {var_type}; it has no "
                f"attribute {'.'.join(parts[1:])!r}",
            )
        attr_type = var_type.attr(parts[1])
        if attr_type is None:
            names = ", ".join(k for k, _ in var_type.attrs or ())
            raise _at(node, f"items have no attribute {parts[1]!r}; declared: {names}")
        return VarAttr(attr_type, True, parts[0], parts[1])

    def _table_output(self, node: ast.Attribute, parts: list[str]) -> Node:
        if len(parts) != 3:
            raise _at(node, "expected tables.<table id>.<output>")
        table_id = self.table_names.get(parts[1], parts[1])
        outputs = self.env.table_outputs.get(table_id)
        if outputs is None:
            known = ", ".join(sorted(self.env.table_outputs)) or "none are declared"
            raise _at(node, f"unknown table {table_id!r} (tables: {known})")
        out_type = outputs.get(parts[2])
        if out_type is None:
            raise _at(
                node,
                f"table {table_id!r} has no output {parts[2]!r}; outputs: " + ", ".join(outputs),
            )
        path = f"tables.{table_id}.{parts[2]}"
        self.reads.add(path)
        return self.env.slot(path, out_type)

    def visit_List(self, node: ast.List) -> Node:
        if len(node.elts) > MAX_LIST_ITEMS:
            raise _at(
                node, f"list literal has {len(node.elts)} items; the limit is {MAX_LIST_ITEMS}"
            )
        items = []
        for elt in node.elts:
            item = self.visit(elt)
            if not isinstance(item, Const):
                raise _at(
                    elt,
                    "list literals may hold only literal values; expected a "
                    "number, a string, true or false",
                )
            items.append(item)
        item_type = _common_type([i.type for i in items], node)
        return ListConst(list_of(item_type), False, tuple(i.value for i in items))

    # -- operators --------------------------------------------------------------------------

    def visit_BoolOp(self, node: ast.BoolOp) -> Node:
        op = "and" if isinstance(node.op, ast.And) else "or"
        operands = tuple(self._boolean(v, f"'{op}'") for v in node.values)
        return BoolOp(BOOLEAN, any(o.nullable for o in operands), op, operands)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> Node:
        if isinstance(node.op, ast.Not):
            operand = self._boolean(node.operand, "'not'")
            return Not(BOOLEAN, operand.nullable, operand)
        if isinstance(node.op, ast.USub | ast.UAdd):
            operand = self.visit(node.operand)
            if not operand.type.numeric:
                raise _at(node, f"unary minus needs a number, got {_a(operand.type)}")
            if isinstance(node.op, ast.UAdd):
                return operand
            if isinstance(operand, Const):
                return Const(operand.type, False, -operand.value)
            return Neg(operand.type, operand.nullable, operand)
        raise _at(node, "bitwise operators are not allowed")

    def visit_BinOp(self, node: ast.BinOp) -> Node:
        op = _BINOPS.get(type(node.op))
        if op is None:
            if isinstance(node.op, ast.FloorDiv):
                raise _at(node, "// is not allowed; use / (and round() if needed)")
            raise _at(
                node, f"operator in {_describe(node)!r} is not allowed; expected + - * / % **"
            )
        left, right = self.visit(node.left), self.visit(node.right)
        lt, rt = left.type, right.type
        # /, % and ** can be unknown whatever their operands: by zero, or no finite number.
        nullable = left.nullable or right.nullable or op in ("/", "%", "**")
        if op == "+" and lt.kind == "string" and rt.kind == "string":
            return Arith(STRING, nullable, op, left, right)
        if not (lt.numeric and rt.numeric):
            raise _at(
                node,
                f"cannot apply {op} to {lt} and {rt} ({_describe(node)}); "
                + ("expected two numbers or two strings" if op == "+" else "expected numbers"),
            )
        result = NUMBER if op in ("/", "**") or NUMBER in (lt.plain(), rt.plain()) else INTEGER
        # A float result can leave the finite numbers (1e308 * 10): unknown, whatever the
        # operands (constants and list items are never unknown themselves).
        nullable = nullable or result is NUMBER
        return Arith(result, nullable, op, left, right, self._text(node))

    def _text(self, node: ast.expr) -> str:
        """The author's text of ``node``, shortened past 80 characters."""
        piece = self.source[node.col_offset : node.end_col_offset or node.col_offset]
        text = piece.decode("utf-8", "replace")
        return text if len(text) <= 80 else text[:77] + "..."

    def visit_Compare(self, node: ast.Compare) -> Node:
        operands = [self.visit(node.left)] + [self.visit(c) for c in node.comparators]
        parts: list[Node] = []
        for i, op_node in enumerate(node.ops):
            op = _CMPOPS.get(type(op_node))
            if op is None:
                raise _at(
                    node,
                    "'is' and 'is not' are not allowed; use == / != to compare "
                    "values, or missing(field) to test for an absent one",
                )
            left, right = operands[i], operands[i + 1]
            self._check_compare(node, op, left, right)
            if op in ("==", "!="):
                # A list literal is a set for membership (``x in [...]``); compared with a
                # list, it is that list, in order.
                left, right = _as_list(left), _as_list(right)
            parts.append(Compare(BOOLEAN, left.nullable or right.nullable, op, left, right))
        if len(parts) == 1:
            return parts[0]
        return BoolOp(BOOLEAN, any(p.nullable for p in parts), "and", tuple(parts))

    def _check_compare(self, node: ast.AST, op: str, left: Node, right: Node) -> None:
        lt, rt = left.type, right.type
        if op in ("in", "not in"):
            if rt.kind == "string":
                if lt.kind != "string":
                    raise _at(
                        node,
                        f"'{op}' a string needs a string on the left, got {_a(lt)} "
                        f"({_describe(node)})",
                    )
                return
            if rt.kind != "list":
                raise _at(
                    node,
                    f"'{op}' needs a list or a string on the right, got {_a(rt)} "
                    f"({_describe(node)})",
                )
            if rt.item is not None and not comparable(lt, rt.item):
                raise _at(node, f"cannot test a {lt} for membership in a {rt} ({_describe(node)})")
            if isinstance(right, ListConst):
                self._check_enum(node, left, right.values)
            return
        if op in ("==", "!="):
            if not comparable(lt, rt):
                raise _at(node, f"cannot compare {lt} with {rt} ({_describe(node)})")
        elif not orderable(lt, rt):
            raise _at(
                node,
                f"cannot order {lt} and {rt} with {op} ({_describe(node)}); "
                "expected two "
                "numbers, two strings or two datetimes",
            )
        for a, b in ((left, right), (right, left)):
            if isinstance(b, Const):
                self._check_enum(node, a, (b.value,))

    def _check_enum(self, node: ast.AST, subject: Node, values: tuple[Any, ...]) -> None:
        enum = subject.type.enum
        if enum is None or not isinstance(subject, Slot):
            return
        for value in values:
            if isinstance(value, str) and value not in enum:
                close = difflib.get_close_matches(value, sorted(enum), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise _at(
                    node,
                    f"{value!r} is not one of {subject.path}'s values "
                    f"({', '.join(sorted(enum))}){hint}",
                )

    def _boolean(self, node: ast.AST, where: str) -> Node:
        result = self.visit(node)
        if result.type.kind != "boolean":
            raise _at(
                node,
                f"{where} needs true/false operands, but {_describe(node)!r} is {_a(result.type)}",
            )
        return result

    # -- calls ------------------------------------------------------------------------------

    def visit_Call(self, node: ast.Call) -> Node:
        if not isinstance(node.func, ast.Name):
            raise _at(
                node,
                f"only these functions may be called: {', '.join(FUNCTIONS)}; "
                f"{_describe(node.func)!r} is not one of them",
            )
        name = node.func.id
        if name not in FUNCTIONS:
            close = difflib.get_close_matches(name, FUNCTIONS, n=1)
            hint = f"; did you mean {close[0]}()?" if close else ""
            raise _at(node, f"unknown function {name!r}{hint}; allowed: {', '.join(FUNCTIONS)}")
        if name in ("any", "all"):
            return self._quantifier(node, name)
        if name == "count":
            return self._count(node)
        if node.keywords:
            raise _at(node, f"{name}() takes no keyword arguments")
        if name == "missing":
            return self._missing(node)
        args = tuple(self.visit(a) for a in node.args)
        return self._call(node, name, args)

    def _arity(self, node: ast.Call, name: str, n: int, low: int, high: int) -> None:
        if not low <= n <= high:
            want = str(low) if low == high else f"{low} to {high}"
            if high > 100:
                want = f"at least {low}"
            raise _at(node, f"{name}() takes {want} argument{'s' if high != 1 else ''}, got {n}")

    def _call(self, node: ast.Call, name: str, args: tuple[Node, ...]) -> Node:
        """A call of a built-in function, checked as its entry in engine.builtins declares."""
        fn = BUILTINS[name]
        self._arity(node, name, len(args), *fn.arity)
        return fn.check(Site(node, fn, args, self._now))

    def _now(self) -> Slot:
        return self.env.slot("now()", DATETIME)

    def _missing(self, node: ast.Call) -> Node:
        self._arity(node, "missing", len(node.args), *BUILTINS["missing"].arity)
        arg = self.visit(node.args[0])
        if not isinstance(arg, Slot) or arg.path.startswith(("count(", "now()")):
            raise _at(node, "missing() takes a declared field, such as missing(customer.email)")
        return Missing(BOOLEAN, False, arg)

    def _count(self, node: ast.Call) -> Node:
        args = list(node.args)
        within_node: ast.AST | None = None
        for kw in node.keywords:
            if kw.arg != "within":
                raise _at(
                    node,
                    f"count() has no argument {kw.arg!r}; expected "
                    'count("event_type", within="7d")',
                )
            within_node = kw.value
        if within_node is None and len(args) == 2:
            within_node = args.pop()
        if len(args) != 1 or within_node is None:
            raise _at(node, 'expected count("event_type", within="7d")')
        event = args[0]
        if not (
            isinstance(event, ast.Constant)
            and isinstance(event.value, str)
            and re.fullmatch(r"[A-Za-z0-9_.:-]{1,100}", event.value)
        ):
            raise _at(
                node, "count()'s event type must be a string literal of letters, digits and _ . : -"
            )
        if not (isinstance(within_node, ast.Constant) and isinstance(within_node.value, str)):
            raise _at(node, 'count()\'s within must be a duration literal such as "7d"')
        try:
            parse_duration(within_node.value)
        except ValueError as exc:
            raise _at(node, str(exc)) from None
        return self.env.counter(event.value, within_node.value)

    def _quantifier(self, node: ast.Call, kind: str) -> Node:
        if node.keywords or len(node.args) != 1 or not isinstance(node.args[0], ast.GeneratorExp):
            raise _at(node, f"expected {kind}(<condition> for x in <list field>)")
        gen = node.args[0]
        if len(gen.generators) != 1:
            raise _at(gen, f"{kind}() takes a single 'for'")
        comp = gen.generators[0]
        if comp.ifs or comp.is_async:
            raise _at(gen, f"{kind}() takes no 'if' clause; put the test in the condition")
        if not isinstance(comp.target, ast.Name):
            raise _at(gen, f"expected a single name after 'for' in {kind}()")
        var = comp.target.id
        if (
            var in RESERVED_NAMES
            or var.startswith("_")
            or keyword.iskeyword(var)
            or any(p.startswith(var + ".") for p in self.env.fields)
            or var in self.vars
        ):
            raise _at(gen, f"{var!r} cannot name the item; choose another name, such as item")
        source = self.visit(comp.iter)
        if source.type.kind != "list":
            raise _at(comp.iter, f"{kind}() iterates over a list, got {_a(source.type)}")
        item_type = source.type.item
        if item_type is None:
            raise _at(
                comp.iter,
                "the list's items have no declared type; declare items: "
                "in the field's context entry",
            )
        self.vars[var] = item_type
        try:
            body = self._boolean(gen.elt, f"{kind}()")
        finally:
            del self.vars[var]
        return Quantifier(BOOLEAN, source.nullable or body.nullable, kind, var, source, body)

    # -- names that are not nodes -----------------------------------------------------------

    def visit_GeneratorExp(self, node: ast.GeneratorExp) -> Node:
        raise _at(node, _FORBIDDEN[ast.GeneratorExp])


def _common_type(types: list[Type], node: ast.AST) -> Type | None:
    if not types:
        return None
    first = types[0]
    if all(t.numeric for t in types):
        return INTEGER if all(t.kind == "integer" for t in types) else NUMBER
    for t in types:
        if t.kind != first.kind:
            raise _at(node, f"list literal mixes {first} and {t}; its items must share a type")
    return first


def value_type(value: Any) -> Type | None:
    """The type of a literal JSON value (None for null)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, int):
        return INTEGER
    if isinstance(value, float):
        return NUMBER
    if isinstance(value, str):
        return STRING
    if isinstance(value, list):
        item_types = [t for t in (value_type(v) for v in value) if t is not None]
        if item_types and all(t.numeric for t in item_types):
            return list_of(NUMBER if any(t.kind == "number" for t in item_types) else INTEGER)
        kinds = {t.kind for t in item_types}
        return list_of(item_types[0] if len(kinds) == 1 else None)
    return OBJECT


def _as_list(node: Node) -> Node:
    """A list literal compared for equality: a constant list (not the set ``in`` uses)."""
    if isinstance(node, ListConst):
        return Const(node.type, False, list(node.values))
    return node
