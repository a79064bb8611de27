"""A small tree-walking interpreter of Frontline documents, the oracle of the differential tests.

It is written from docs/language.md alone and shares no code with ``engine``: every call walks
Python's ``ast`` of each expression again, unknown values are the ``UNKNOWN`` sentinel, and
clarity wins over speed. It trusts its input to be a valid, already-parsed document (checking
is the compiler's job) and gives the parts of ``Decision.to_dict()`` it covers::

    decide(document, context, answers, now, counters, tree)
      -> eligible, escalation, alerts, tables, errors, next_step, missing_fields, invalid_fields

Each expression is evaluated to its value together with the arithmetic that failed on the way
(division or ``%`` by zero, a result that is not a finite number) and whose unknown reached the
value: ``errors`` lists those of the expressions that came out unknown (docs/language.md).

Which fields count as *read* for ``missing_fields``: every field named anywhere in an expression
that was evaluated — each rule's ``when`` (alerts and escalation: those triggered on
``decision``), each table's inputs, a fired alert's message, every branch condition of each
tree node the walk routed through (a node reads all its branches, as the doc says "tree nodes
read"), and the ``say`` of the outcome reached. Within one expression no operand is skipped:
three-valued ``and``/``or`` are symmetric, so what an expression reads does not depend on
operand order.

Three readings of docs/language.md are switchable below, because the engine was seen to read
the doc differently; each default is the doc's wording.
"""

from __future__ import annotations

import ast
import functools
import json
import math
import operator
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import re2


class _Unknown:
    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Any = _Unknown()
MAX_MATCHED_LENGTH = 10_000  # docs/language.md: matches() of a longer string is unknown
TRIGGERS = ("decision", "context_change", "event")

# docs/language.md fixes three choices; each switch names the alternative it turned down.
# A wrong-typed value is listed in invalid_fields, not also in missing_fields.
INVALID_IS_MISSING = False
# Only fields some expression of the document reads are checked (whether or not that
# expression ran), so a wrong-typed field no expression mentions is not listed.
UNREAD_INVALID_LISTED = False
# Fields read only by message/say templates do not count towards missing_fields.
TEMPLATES_READ = False
LITERAL_NAMES = {
    "true": True,
    "True": True,
    "false": False,
    "False": False,
    "null": None,
    "None": None,
}


# -- three-valued logic ------------------------------------------------------------------------


def all3(values: list[Any]) -> Any:
    """Three-valued ``and`` of any number of values (true for none)."""
    if any(v is False for v in values):
        return False
    return UNKNOWN if any(v is UNKNOWN for v in values) else True


def any3(values: list[Any]) -> Any:
    """Three-valued ``or`` of any number of values (false for none)."""
    if any(v is True for v in values):
        return True
    return UNKNOWN if any(v is UNKNOWN for v in values) else False


Why = list[str]  # the failed arithmetic whose unknown reached a value


def joined(combine: Callable[[list[Any]], Any], results: list[tuple[Any, Why]]) -> tuple[Any, Why]:
    """``all3``/``any3`` of explained values: an unknown result is owed to its unknown ones."""
    value = combine([v for v, _ in results])
    if value is not UNKNOWN:
        return value, []
    return value, [w for v, why in results if v is UNKNOWN for w in why]


# -- input values ------------------------------------------------------------------------------

_RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)")


def parse_datetime(value: Any) -> datetime | None:
    """An RFC 3339 timestamp as an aware datetime, or None if it is not one."""
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        return None
    try:
        return datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        return None


def _non_finite(value: Any) -> bool:
    """Whether a number is infinite or NaN (an int never is, however large)."""
    return isinstance(value, float) and (math.isinf(value) or math.isnan(value))


_IS_TYPE: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: (
        isinstance(v, int | float) and not isinstance(v, bool) and not _non_finite(v)
    ),
    "boolean": lambda v: isinstance(v, bool),
    "list": lambda v: isinstance(v, list),
}


def checked(value: Any, spec: Mapping[str, Any]) -> tuple[Any, bool]:
    """The value as the rules see it (or UNKNOWN) and whether it had the declared type."""
    if value is None:
        return UNKNOWN, True
    kind = spec["type"]
    if kind == "datetime":
        parsed = parse_datetime(value)
        return (UNKNOWN, False) if parsed is None else (parsed, True)
    if not _IS_TYPE[kind](value) or value not in spec.get("enum", [value]):
        return UNKNOWN, False
    if kind == "list" and spec.get("items") is not None:
        results = [_item(spec["items"], item) for item in value]
        kept = [item for item, _ in results if item is not UNKNOWN]
        return kept, all(ok for _, ok in results)
    return value, True


def _item(items: str | Mapping[str, str], item: Any) -> tuple[Any, bool]:
    """A list item checked against ``items``: (its value, whether it matched).

    A scalar of the wrong type, or an item that is not an object where objects are declared,
    is left out (UNKNOWN); an object keeps its place and a wrong-typed attribute reads unknown.
    """
    if item is None:
        return UNKNOWN, False  # a null item is not an item of any type
    if isinstance(items, str):
        value, ok = checked(item, {"type": items})
        return (value if ok else UNKNOWN), ok
    if not isinstance(item, dict):
        return UNKNOWN, False
    attributes = {name: checked(item.get(name), {"type": kind}) for name, kind in items.items()}
    values = {name: value for name, (value, _) in attributes.items()}
    return values, all(ok for _, ok in attributes.values())


def lookup(
    path: str, context: Mapping[str, Any], answers: Mapping[str, Any]
) -> tuple[Any, str | None]:
    """The raw value at a dotted path (``answers.*`` from the answers; None if absent), and the
    path of a value on the way there that should have been an object but was not."""
    root, *rest = path.split(".")
    node: Any = answers if root == "answers" else context
    walked = ["answers"] if root == "answers" else []
    for segment in rest if root == "answers" else [root, *rest]:
        if node is None:
            return None, None
        if not isinstance(node, dict):
            return None, ".".join(walked)
        node = node.get(segment)
        walked.append(segment)
    return node, None


# -- expressions -------------------------------------------------------------------------------

_TABLE_REF = re.compile(r"\btables\.([a-z][a-z0-9-]*)\.([a-z_][a-z0-9_]*)")


Refs = dict[str, tuple[str, str]]


@functools.lru_cache(maxsize=4096)
def parse(text: str) -> tuple[ast.expr, Refs, str]:
    """The ``ast`` of an expression, with each ``tables.<id>.<output>`` (whose id may hold
    ``-``, which Python would read as minus) replaced by a placeholder name; the placeholder
    names, and the text parsed (whose spans the nodes give)."""
    refs: Refs = {}

    def placeholder(match: re.Match[str]) -> str:
        name = f"table_ref_{len(refs)}"
        refs[name] = (match[1], match[2])
        return name

    plain = _TABLE_REF.sub(placeholder, text)
    return ast.parse(plain, mode="eval").body, refs, plain


def written(node: ast.AST, plain: str, refs: Refs) -> str:
    """An operation as the author wrote it, at most 80 characters (docs: errors)."""
    text = ast.get_source_segment(plain, node) or ""
    for name, (table, output) in refs.items():
        text = re.sub(rf"\b{name}\b", f"tables.{table}.{output}", text)
    return text if len(text) <= 80 else text[:77] + "..."


def dotted(node: ast.AST) -> str | None:
    """``customer.tier`` for the attribute chain ``customer.tier``; None for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def referenced_fields(document: Mapping[str, Any]) -> set[str]:
    """Every dotted path any expression or template of the document mentions, run or not."""
    texts: list[str] = []
    for section in ("eligibility", "escalation", "alerts"):
        for rule in document.get(section, []):
            texts.append(str(rule["when"]))
            texts.extend(re.findall(r"\{([^{}]*)\}", rule.get("message", "")))
    for table in document.get("tables", []):
        texts.extend(table["inputs"])
        for row in table["rows"]:
            for cell in row[len(table["inputs"]) :]:
                if computed_cell(cell):
                    texts.extend(template_parts(cell))
    for tree in document.get("trees", []):
        for node in tree["nodes"].values():
            texts.extend(str(b["when"]) for b in node.get("next") or [] if "when" in b)
            texts.extend(re.findall(r"\{([^{}]*)\}", node.get("say") or ""))
            if node.get("answer"):
                texts.append(node["answer"])
    found: set[str] = set()
    for text in texts:
        # Table ids may hold '-'; they read no declared field, so any spelling will do.
        plain = re.sub(r"tables\.([a-z][a-z0-9-]*)", lambda m: "t_" + m[1].replace("-", "_"), text)
        tree_ = ast.parse(plain.strip(), mode="eval")
        found.update(p for n in ast.walk(tree_) if (p := dotted(n)) is not None)
    return found


def finite(value: Any) -> Any:
    """A number JSON can carry, or UNKNOWN for infinities and NaN (docs: overflow is unknown)."""
    return UNKNOWN if _non_finite(value) else value


def _number(op: Callable[..., Any]) -> Callable[..., Any]:
    """An arithmetic operation whose overflow (to infinity, or of an int into floats) or NaN
    gives unknown, as a division by zero does."""

    def checked(*args: Any) -> Any:
        try:
            return finite(op(*args))
        except OverflowError:
            return UNKNOWN

    return checked


def _divide(op: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    return lambda a, b: UNKNOWN if b == 0 else _number(op)(a, b)


def _power(a: Any, b: Any) -> Any:
    """``**`` in floats: unknown where the result is no finite real number."""
    a, b = float(a), float(b)
    if (a == 0 and b < 0) or (a < 0 and not b.is_integer()):
        return UNKNOWN
    return math.pow(a, b)


ARITHMETIC: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: _number(operator.add),
    ast.Sub: _number(operator.sub),
    ast.Mult: _number(operator.mul),
    ast.Div: _divide(operator.truediv),
    ast.Mod: _divide(operator.mod),
    ast.Pow: _number(_power),
}


COMPARISONS: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}


def _extreme(pick: Callable[..., Any]) -> Callable[..., Any]:
    def extreme(*args: Any) -> Any:
        items = args[0] if len(args) == 1 else args
        if not items or any(i is None or i is UNKNOWN for i in items):
            return UNKNOWN
        return pick(items)

    return extreme


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": len,
    "abs": abs,
    "min": _extreme(min),
    "max": _extreme(max),
    "round": round,
    "lower": str.lower,
    "upper": str.upper,
    "contains": lambda s, x: x in s,
    "startswith": str.startswith,
    "endswith": str.endswith,
    "matches": lambda s, pattern: (
        UNKNOWN if len(s) > MAX_MATCHED_LENGTH else re2.search(pattern, s) is not None
    ),
}


def show(value: Any) -> str:
    """A value as a template prints it: strings as they are, the rest as JavaScript's JSON
    (5.0 prints as 5), unknown as ``?``."""
    if value is UNKNOWN or value is None:
        return "?"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float):
        return js_number(value)
    return value if isinstance(value, str) else json.dumps(value)


def js_number(value: float) -> str:
    """A float as JavaScript's Number::toString writes it (ECMA-262 6.1.6.1.20): the shortest
    digits that give the value back, written out from 1e-6 up to 1e21, else with an
    exponent (``1e-7``, ``1.5e+21``)."""
    if value == 0:
        return "0"
    if value < 0:
        return "-" + js_number(-value)
    # %e with 16 decimals gives 17 significant digits; fewer may do, so take the fewest
    # that read back as the same float.
    for precision in range(17):
        text = f"{value:.{precision}e}"
        if float(text) == value:
            break
    mantissa, exponent = text.split("e")
    digits = mantissa.replace(".", "").rstrip("0") or "0"
    n = int(exponent) + 1  # value = 0.digits * 10**n
    k = len(digits)
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * -n + digits
    tail = digits[0] + ("." + digits[1:] if k > 1 else "")
    return f"{tail}e{'+' if n - 1 >= 0 else '-'}{abs(n - 1)}"


# -- decision tables ---------------------------------------------------------------------------

_LITERAL = r'-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|"(?:[^"\\]|\\.)*"'
_RANGE = re.compile(rf"([\[(])\s*({_LITERAL})\s*\.\.\s*({_LITERAL})\s*([\])])")
_COMPARISON = re.compile(r"(<=|>=|<|>)\s*(.+)")


def split_top(text: str) -> list[str]:
    """Split a cell at the commas that are outside brackets and string literals."""
    parts, depth, start, quoted, escaped = [], 0, 0, False, False
    for i, ch in enumerate(text):
        if quoted:
            escaped, quoted = (False, True) if escaped else (ch == "\\", ch != '"')
        elif ch == '"':
            quoted = True
        elif ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    return [*parts, text[start:]]


def unary_test(test: str, value: Any) -> bool:
    """Whether a known value passes one unary test (no top-level commas)."""
    test = test.strip()
    if test.startswith("not(") and test.endswith(")"):
        return not any(unary_test(t, value) for t in split_top(test[4:-1]))
    if match := _RANGE.fullmatch(test):
        low, high = json.loads(match[2]), json.loads(match[3])
        above = low <= value if match[1] == "[" else low < value
        below = value <= high if match[4] == "]" else value < high
        return above and below
    if match := _COMPARISON.fullmatch(test):
        return COMPARISONS[{"<": ast.Lt, "<=": ast.LtE, ">": ast.Gt, ">=": ast.GtE}[match[1]]](
            value, json.loads(match[2])
        )
    literal = json.loads(test)
    return value in literal if isinstance(literal, list) else value == literal


def cell_matches(cell: Any, value: Any) -> bool:
    """Whether an input cell (a unary-test string, or a YAML scalar or list) matches a value."""
    if cell == "-":
        return True
    if value is UNKNOWN:
        return False
    if isinstance(cell, str):
        return any(unary_test(test, value) for test in split_top(cell))
    return value in cell if isinstance(cell, list) else value == cell


def aggregate(kind: str, values: list[Any]) -> Any:
    """A ``collect`` table's aggregate of one output column (None, i.e. unknown, if empty);
    null outputs (a computed cell's unknown value) are skipped, but counted by ``count``."""
    if kind == "count":
        return len(values)
    values = [v for v in values if v is not None]
    if not values:
        return None
    if kind == "sum":
        total = _number(sum)(values)
        return None if total is UNKNOWN else total
    return {"min": min, "max": max}[kind](values)


def output_cell(cell: Any) -> Any:
    """An output cell's value: a string in double quotes, as input cells write strings, is the
    string inside them."""
    text = cell.strip() if isinstance(cell, str) else ""
    return json.loads(text) if len(text) >= 2 and text[0] == text[-1] == '"' else cell


def computed_cell(cell: Any) -> bool:
    """Whether an output cell is a template: a string with braces, not in double quotes."""
    if not isinstance(cell, str) or not ("{" in cell or "}" in cell):
        return False
    text = cell.strip()
    return not (len(text) >= 2 and text[0] == text[-1] == '"')


def template_parts(template: str) -> list[str]:
    """The expressions of a template's ``{...}`` parts."""
    return re.findall(r"\{([^{}]*)\}", template.replace("{{", "").replace("}}", ""))


# -- one evaluation ----------------------------------------------------------------------------


class Evaluation:
    """The state of one evaluation: checked field values, table results and fields read."""

    def __init__(
        self,
        document: Mapping[str, Any],
        context: Mapping[str, Any] | None,
        answers: Mapping[str, Any] | None,
        now: datetime | None,
        counters: Mapping[str, Mapping[str, int]] | None,
    ) -> None:
        self.values: dict[str, Any] = {}
        self.invalid: dict[str, list[str]] = {}  # wrong-typed value -> declared fields under it
        for path, declared in document["context"].items():
            spec = {"type": declared} if isinstance(declared, str) else declared
            raw, not_object = lookup(path, context or {}, answers or {})
            value, ok = checked(raw, spec)
            self.values[path] = value
            if not_object or not ok:
                self.invalid.setdefault(not_object or path, []).append(path)
        self.now, self.counters = now, counters or {}
        self.tables = {table["id"]: table for table in document.get("tables", [])}
        self.table_results: dict[str, tuple[dict[str, Any] | None, str | None]] = {}
        self.read: set[str] = set()
        self.errors: list[dict[str, str]] = []  # failed arithmetic that left a site unknown

    def evaluate(self, text: str | bool, reads: bool = True) -> Any:
        """Evaluate one expression (a ``when:`` may be a YAML boolean), noting the fields read."""
        return self.explain(text, reads)[0]

    def explain(self, text: str | bool, reads: bool = True) -> tuple[Any, Why]:
        """An expression's value, and the failed arithmetic that made it unknown."""
        if isinstance(text, bool):
            return text, []
        body, refs, plain = parse(text)
        if reads:
            self.read.update(p for n in ast.walk(body) if (p := dotted(n)) in self.values)
        return self.ev(body, {}, (refs, plain))

    def site(self, key: str, owner: str, where: str, text: str | bool, reads: bool = True) -> Any:
        """Evaluate an expression that is reported in ``errors`` when failed arithmetic leaves
        it unknown: one entry per distinct failure."""
        value, why = self.explain(text, reads)
        if value is UNKNOWN:
            for failure in dict.fromkeys(why):
                self.errors.append({key: owner, "error": failure + where})
        return value

    def ev(self, node: ast.AST, scope: dict[str, Any], src: tuple[Refs, str]) -> tuple[Any, Why]:
        """The value of one expression node and why it is unknown; ``scope`` holds generator
        variables, ``src`` the placeholders and the text parsed."""

        def sub(child: ast.AST) -> tuple[Any, Why]:
            return self.ev(child, scope, src)

        refs = src[0]
        match node:
            case ast.Constant(value=value):
                return value, []
            case ast.Name(id=name) if name in scope:
                return scope[name], []
            case ast.Name(id=name) if name in refs:
                return self.table_output(*refs[name]), []
            case ast.Name(id=name):
                value = LITERAL_NAMES[name]
                return (UNKNOWN if value is None else value), []
            case ast.Attribute(value=ast.Name(id=name), attr=attr) if name in scope:
                return (UNKNOWN if scope[name] is UNKNOWN else scope[name][attr]), []
            case ast.Attribute():
                return self.values[dotted(node)], []
            case ast.List(elts=items):
                return [sub(item)[0] for item in items], []
            case ast.BoolOp(op=op, values=operands):
                return joined(all3 if isinstance(op, ast.And) else any3, [sub(o) for o in operands])
            case ast.UnaryOp(op=op, operand=operand):
                value, why = sub(operand)
                if value is UNKNOWN:
                    return UNKNOWN, why
                return ((not value) if isinstance(op, ast.Not) else -value), []
            case ast.BinOp(left=left, op=op, right=right):
                (a, why_a), (b, why_b) = sub(left), sub(right)
                if UNKNOWN in (a, b):
                    return UNKNOWN, why_a + why_b
                text = written(node, src[1], refs)
                if isinstance(op, ast.Div | ast.Mod) and b == 0:
                    kind = "division" if isinstance(op, ast.Div) else "modulo"
                    return UNKNOWN, [f"{kind} by zero in `{text}`"]
                result = ARITHMETIC[type(op)](a, b)
                if result is UNKNOWN:
                    return UNKNOWN, [f"the result of `{text}` is not a finite number"]
                return result, []
            case ast.Compare(left=left, ops=ops, comparators=rights):
                operands = [sub(left), *map(sub, rights)]
                return joined(
                    all3,
                    [
                        (UNKNOWN, [w for v, why in (a, b) if v is UNKNOWN for w in why])
                        if UNKNOWN in (a[0], b[0])
                        else (COMPARISONS[type(op)](a[0], b[0]), [])
                        for op, a, b in zip(ops, operands, operands[1:], strict=False)
                    ],
                )
            case ast.Call(func=ast.Name(id=name), args=args, keywords=keywords):
                return self.call(name, args, keywords, scope, src)
        raise ValueError(f"not in the language: {ast.unparse(node)}")

    def call(
        self,
        name: str,
        args: list[ast.expr],
        keywords: list[ast.keyword],
        scope: dict[str, Any],
        src: tuple[Refs, str],
    ) -> tuple[Any, Why]:
        """The value of a function call, and why it is unknown."""
        if name in ("any", "all"):
            (generator,) = args
            assert isinstance(generator, ast.GeneratorExp)
            (loop,) = generator.generators
            items, _ = self.ev(loop.iter, scope, src)
            if items is UNKNOWN:
                return UNKNOWN, []
            assert isinstance(loop.target, ast.Name)
            results = [
                self.ev(generator.elt, {**scope, loop.target.id: item}, src) for item in items
            ]
            return joined(any3 if name == "any" else all3, results)
        if name == "missing":
            return self.ev(args[0], scope, src)[0] is UNKNOWN, []
        if name == "count":
            event, *within = [ast.literal_eval(a) for a in [*args, *(k.value for k in keywords)]]
            return self.counters.get(event, {}).get(within[0], 0), []
        explained = [self.ev(arg, scope, src) for arg in args]
        values = [v for v, _ in explained]
        if name in ("now", "days_since", "hours_since") and self.now is None:
            return UNKNOWN, []
        if UNKNOWN in values:
            return UNKNOWN, [w for v, why in explained if v is UNKNOWN for w in why]
        if name == "now":
            return self.now, []
        if name in ("days_since", "hours_since"):
            seconds = (self.now - values[0]).total_seconds()
            return seconds / (86_400 if name == "days_since" else 3_600), []
        return FUNCTIONS[name](*values), []

    def render(self, template: str | None, key: str, owner: str, where: str) -> str | None:
        """A ``message:``/``say:`` template with its ``{expression}`` parts filled in; a part
        left unknown by failed arithmetic is reported as the site ``key: owner``."""
        if template is None:
            return None

        def fill(part: re.Match[str]) -> str:
            escaped = {"{{": "{", "}}": "}"}.get(part[0])
            if escaped:
                return escaped
            return show(self.site(key, owner, where, part[0][1:-1], reads=TEMPLATES_READ))

        return re.sub(r"\{\{|\}\}|\{[^{}]*\}", fill, template)

    def table(self, table_id: str) -> tuple[dict[str, Any] | None, str | None]:
        """A table's outputs (None if no row gave them) and its error, computed once."""
        if table_id not in self.table_results:
            self.table_results[table_id] = self._run_table(self.tables[table_id])
        return self.table_results[table_id]

    def table_output(self, table_id: str, output: str) -> Any:
        """``tables.<id>.<output>`` in an expression: a null or absent output is unknown."""
        outputs, _ = self.table(table_id)
        value = None if outputs is None else outputs[output]
        return UNKNOWN if value is None else value

    def output(self, cell: Any) -> Any:
        """An output cell's value: a literal, or a computed cell's (docs/language.md): one
        ``{...}`` part alone gives its value (null for unknown), text with parts the text."""
        if not computed_cell(cell):
            return output_cell(cell)
        whole = re.fullmatch(r"\{([^{}]*)\}", cell)
        if whole is None:
            # A computed cell's failed arithmetic is not a decision error: only unknown.
            def fill(part: re.Match[str]) -> str:
                escaped = {"{{": "{", "}}": "}"}.get(part[0])
                return escaped or show(self.evaluate(part[0][1:-1], reads=TEMPLATES_READ))

            return re.sub(r"\{\{|\}\}|\{[^{}]*\}", fill, cell)
        value = self.evaluate(whole[1])
        return None if value is UNKNOWN else value

    def _run_table(self, table: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
        inputs = [self.site("table", table["id"], "", text) for text in table["inputs"]]
        outputs = [o if isinstance(o, str) else o["name"] for o in table["outputs"]]
        for row in table["rows"]:  # what computed cells read is read by the table, row won or not
            for cell in row[len(inputs) :]:
                if computed_cell(cell):
                    for text in template_parts(cell):
                        body, _, _ = parse(text)
                        self.read.update(
                            p for n in ast.walk(body) if (p := dotted(n)) in self.values
                        )
        matched = [
            (number, [self.output(cell) for cell in row[len(inputs) :]])
            for number, row in enumerate(table["rows"], 1)
            if all(map(cell_matches, row, inputs))
        ]
        order = [
            [output_cell(v) for v in o.get("values") or []] if isinstance(o, dict) else None
            for o in table["outputs"]
        ]

        def rank(hit: tuple[int, list[Any]]) -> list[int]:
            pairs = zip(order, hit[1], strict=True)
            return [values.index(cell) for values, cell in pairs if values]

        if table["hit"] == "output_order":
            matched.sort(key=rank)
        if table["hit"] in ("collect", "rule_order", "output_order"):
            columns = {name: [cells[i] for _, cells in matched] for i, name in enumerate(outputs)}
            if table.get("aggregate"):
                results = {n: aggregate(table["aggregate"], v) for n, v in columns.items()}
                computed = {
                    name
                    for i, name in enumerate(outputs)
                    if any(computed_cell(row[len(inputs) + i]) for row in table["rows"])
                }
                for n, result in results.items():
                    if n in computed:
                        continue  # a computed column's failed sum is not named (language.md)
                    if result is None and columns[n] and table["aggregate"] == "sum":
                        error = f"the sum of {n} is not a finite number"
                        self.errors.append({"table": table["id"], "error": error})
                return results, None
            return columns, None
        if table["hit"] == "unique" and len(matched) > 1:
            return None, f"rows {[number for number, _ in matched]} all match"
        if table["hit"] == "any" and any(cells != matched[0][1] for _, cells in matched):
            return None, f"rows {[number for number, _ in matched]} all match and differ"
        if table["hit"] == "priority":
            matched.sort(key=rank)
        return (dict(zip(outputs, matched[0][1], strict=True)) if matched else None), None

    def walk(self, tree: Mapping[str, Any]) -> dict[str, Any]:
        """Walk a tree from its start to a question, an outcome, or a node where no branch holds."""
        node_id, path = tree["start"], []
        while True:
            path.append(node_id)
            node = tree["nodes"][node_id]
            here = {"tree": tree["id"], "node": node_id}
            if node.get("outcome") is not None:
                return {
                    **here,
                    "outcome": node["outcome"],
                    "say": self.render(
                        node.get("say"), "tree", tree["id"], f" in the say of node {node_id!r}"
                    ),
                    "queue": node.get("queue"),
                    "path": path,
                }
            if node.get("answer") is not None and self.values[node["answer"]] is UNKNOWN:
                return {**here, "ask": node.get("ask"), "answer": node["answer"]}
            # Every branch is read; the walk evaluates them in order up to the one that
            # holds, and only those can report failed arithmetic.
            results = [self.explain(branch.get("when", True)) for branch in node["next"]]
            taken = next((k for k, (value, _) in enumerate(results) if value is True), None)
            for value, why in results[: len(results) if taken is None else taken]:
                if value is UNKNOWN:
                    where = f" in a branch of node {node_id!r}"
                    self.errors.extend(
                        {"tree": tree["id"], "error": w + where} for w in dict.fromkeys(why)
                    )
            if taken is None:
                return {**here, "error": "no branch holds", "path": path}
            node_id = node["next"][taken]["goto"]


def decide(
    document: Mapping[str, Any],
    context: Mapping[str, Any] | None = None,
    *,
    answers: Mapping[str, Any] | None = None,
    now: datetime | None = None,
    counters: Mapping[str, Mapping[str, int]] | None = None,
    tree: str | None = None,
) -> dict[str, Any]:
    """The decision a valid document gives for these inputs, in ``Decision.to_dict()``'s shape."""
    run = Evaluation(document, context, answers, now, counters)
    tables = {table_id: run.table(table_id)[0] for table_id in run.tables}
    eligible = [
        {"rule": rule["id"], "offer": rule["offer"]}
        for rule in document.get("eligibility", [])
        if run.site("rule", rule["id"], "", rule["when"]) is True
    ]
    # Escalation rules are tried by priority (ties in document order) until one holds: all
    # are read, but those after it are not evaluated, and report no failed arithmetic.
    # Of those that run on decisions: an escalation rule's ``on`` is ``[decision]`` unless said.
    ranked = sorted(
        (r for r in document.get("escalation", []) if "decision" in r.get("on", ["decision"])),
        key=lambda rule: rule["priority"],
    )
    results = [run.explain(rule["when"]) for rule in ranked]
    first = None
    for rule, (value, why) in zip(ranked, results, strict=True):
        if value is True:
            first = rule
            break
        if value is UNKNOWN:
            run.errors.extend({"rule": rule["id"], "error": w} for w in dict.fromkeys(why))
    alerts = [
        {
            "rule": rule["id"],
            "severity": rule["severity"],
            "message": run.render(rule["message"], "rule", rule["id"], " in the message"),
        }
        for rule in document.get("alerts", [])
        if "decision" in rule.get("on", TRIGGERS)
        and run.site("rule", rule["id"], "", rule["when"]) is True
    ]
    trees = {t["id"]: t for t in document.get("trees", [])}
    chosen = trees[tree] if tree else next(iter(trees.values()), None)
    next_step = None if chosen is None else run.walk(chosen)
    return {
        "eligible": eligible,
        "escalation": first
        and {"rule": first["id"], "queue": first["queue"], "priority": first["priority"]},
        "alerts": alerts,
        "tables": tables,
        "errors": [{"table": t, "error": e} for t, (_, e) in run.table_results.items() if e]
        + run.errors,
        "next_step": next_step,
        "missing_fields": sorted(
            p
            for p in run.read
            if run.values[p] is UNKNOWN and (INVALID_IS_MISSING or p not in run.invalid)
        ),
        "invalid_fields": [
            {"field": path}
            for path, fields in run.invalid.items()
            if UNREAD_INVALID_LISTED or referenced_fields(document).intersection(fields)
        ],
    }
