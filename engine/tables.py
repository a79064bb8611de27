"""Decision tables: unary-test cells, hit policies, and the code that evaluates rows.

A cell is parsed into a small test tree, checked against its input's type, and emitted as a
Python condition over the input value. Rows are evaluated in order inside generated functions;
when a column holds mostly equality tests, the rows are split into buckets by that column's
value so that a lookup touches only the rows that can match.
"""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from engine.expr import INTEGER, NUMBER, Type, comparable, orderable, value_type

_DECODER = json.JSONDecoder()
INDEX_MIN_ROWS = 8


class CellError(Exception):
    """A cell that is not a valid unary test; the message says what was expected."""


# -- unary tests ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnyTest:
    pass


@dataclass(frozen=True)
class EqTest:
    value: Any


@dataclass(frozen=True)
class CmpTest:
    op: str
    value: Any


@dataclass(frozen=True)
class RangeTest:
    low: Any
    high: Any
    low_inclusive: bool
    high_inclusive: bool


@dataclass(frozen=True)
class InTest:
    values: tuple[Any, ...]


@dataclass(frozen=True)
class OrTest:
    tests: tuple[Test, ...]


@dataclass(frozen=True)
class NotTest:
    tests: tuple[Test, ...]


Test = AnyTest | EqTest | CmpTest | RangeTest | InTest | OrTest | NotTest

CELL_SYNTAX = (
    'expected "-", a JSON literal such as \'"gold"\' or 500, "< 5", "[1..10]", '
    "a JSON list, or not(...)"
)


def parse_cell(cell: Any) -> Test:
    """A YAML cell value → a unary test."""
    if isinstance(cell, bool | int | float):
        return EqTest(cell)
    if isinstance(cell, list):
        return _list_test(cell)
    if cell is None:
        raise CellError('empty cell; write "-" to match anything')
    if not isinstance(cell, str):
        raise CellError(f"a cell cannot be a mapping; {CELL_SYNTAX}")
    parser = _CellParser(cell)
    tests = parser.tests()
    parser.skip()
    if parser.pos != len(cell):
        raise CellError(f"unexpected {cell[parser.pos :]!r} in cell {cell!r}; {CELL_SYNTAX}")
    return tests[0] if len(tests) == 1 else OrTest(tuple(tests))


def _list_test(items: list[Any]) -> Test:
    for item in items:
        if isinstance(item, list | dict) or item is None:
            raise CellError("a list cell may hold only numbers, strings and booleans")
    return InTest(tuple(items))


class _CellParser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self, token: str) -> bool:
        self.skip()
        return self.text.startswith(token, self.pos)

    def take(self, token: str) -> bool:
        if self.peek(token):
            self.pos += len(token)
            return True
        return False

    def tests(self) -> list[Test]:
        found = [self.test()]
        while self.take(","):
            found.append(self.test())
        return found

    def test(self) -> Test:
        self.skip()
        if self.pos >= len(self.text):
            raise CellError(f"empty test in cell {self.text!r}; {CELL_SYNTAX}")
        if self.take("not("):
            inner = self.tests()
            if not self.take(")"):
                raise CellError(f"missing ')' in cell {self.text!r}")
            return NotTest(tuple(inner))
        for op in ("<=", ">=", "<", ">"):
            if self.take(op):
                return CmpTest(op, self.literal())
        if self.peek("-") and not self._number_follows():
            self.pos += 1
            return AnyTest()
        if self.peek("(") or self.peek("]"):
            return self.range()
        if self.peek("["):
            start = self.pos
            self.pos += 1
            self.skip()
            if self.text.startswith("]", self.pos):
                self.pos = start
                return _list_test(self.literal())
            try:
                self.literal()
            except CellError:
                self.pos = start
                return _list_test(self.literal())
            is_range = self.peek("..")
            self.pos = start
            return self.range() if is_range else _list_test(self.literal())
        return EqTest(self.literal())

    def _number_follows(self) -> bool:
        nxt = self.pos + 1
        return nxt < len(self.text) and (self.text[nxt].isdigit() or self.text[nxt] == ".")

    def range(self) -> Test:
        opener = self.text[self.pos]
        self.pos += 1
        low = self.literal()
        if not self.take(".."):
            raise CellError(f"expected '..' in range {self.text!r}, as in [1..10]")
        high = self.literal()
        self.skip()
        closer = self.text[self.pos : self.pos + 1]
        if closer not in ("]", ")", "["):
            raise CellError(f"expected ']' or ')' to close the range in {self.text!r}")
        self.pos += 1
        for bound in (low, high):
            if not isinstance(bound, int | float | str) or isinstance(bound, bool):
                raise CellError(f"range bounds must be numbers or strings in {self.text!r}")
        if type(low) is not type(high) and not (_num(low) and _num(high)):
            raise CellError(f"range bounds must have the same type in {self.text!r}")
        if low > high:
            raise CellError(f"empty range {self.text!r}: its low end is above its high end")
        return RangeTest(low, high, opener == "[", closer == "]")

    def literal(self) -> Any:
        self.skip()
        try:
            value, end = _DECODER.raw_decode(self.text, self.pos)
        except json.JSONDecodeError:
            rest = self.text[self.pos :]
            word = rest.split(",")[0].strip()
            if word and word.replace("-", "").replace("_", "").isalnum():
                raise CellError(
                    f"{word!r} is not a JSON literal; write a string in double "
                    f"quotes inside the YAML value: '\"{word}\"'"
                ) from None
            raise CellError(f"cannot read {rest!r} in cell {self.text!r}; {CELL_SYNTAX}") from None
        if value is None:
            raise CellError('null never matches (it is unknown); write "-" to match anything')
        if any(
            isinstance(v, float) and not math.isfinite(v)
            for v in (value if isinstance(value, list) else [value])
        ):
            # JSON's decoder reads Infinity and NaN; a document's numbers must be finite.
            raise CellError(f"numbers must be finite in cell {self.text!r}")
        self.pos = end
        return value


def output_value(cell: Any) -> Any:
    """An output cell's value. A string written as an input cell writes one, in double quotes
    (``'"new"'``), is the string inside them (``new``), as in DMN; any other value is itself.
    """
    if cell.__class__ is not str:
        return cell
    text = cell.strip()
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        return cell
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise CellError(
            f"{cell!r} is in double quotes but is not one JSON string; write the text "
            f"without the quotes, or as one JSON string with inner quotes escaped "
            f'(\'"say \\"hi\\""\')'
        ) from None


def template_cell(cell: Any) -> bool:
    """Whether an output cell is a template, its value computed on each evaluation: a string
    with ``{`` or ``}`` that is not in double quotes (``'"{x}"'`` is the text ``{x}``)."""
    if cell.__class__ is not str or ("{" not in cell and "}" not in cell):
        return False
    text = cell.strip()
    return not (len(text) >= 2 and text[0] == '"' and text[-1] == '"')


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def check_test(test: Test, input_type: Type, enum: frozenset[str] | None) -> None:
    """Raise CellError if ``test`` cannot apply to a value of ``input_type``."""

    def literal(value: Any, ordered: bool) -> None:
        t = value_type(value)
        assert t is not None
        ok = orderable(input_type, t) if ordered else comparable(input_type, t)
        if not ok:
            raise CellError(
                f"cannot {'order' if ordered else 'compare'} this input "
                f"({input_type}) with {json.dumps(value)} ({t})"
            )
        if enum is not None and isinstance(value, str) and not ordered and value not in enum:
            raise CellError(
                f"{json.dumps(value)} is not one of the input's values ({', '.join(sorted(enum))})"
            )

    if isinstance(test, EqTest):
        literal(test.value, False)
    elif isinstance(test, CmpTest):
        literal(test.value, True)
    elif isinstance(test, RangeTest):
        literal(test.low, True)
        literal(test.high, True)
    elif isinstance(test, InTest):
        for v in test.values:
            literal(v, False)
    elif isinstance(test, OrTest | NotTest):
        for t in test.tests:
            check_test(t, input_type, enum)


def emit_test(test: Test, x: str, const: Callable[[Any], str]) -> str | None:
    """A Python condition for ``test`` over the value named ``x``; None means always true."""
    if isinstance(test, AnyTest):
        return None
    if isinstance(test, EqTest):
        return f"{x} == {test.value!r}"
    if isinstance(test, CmpTest):
        return f"({x} is not None and {x} {test.op} {test.value!r})"
    if isinstance(test, RangeTest):
        low = "<=" if test.low_inclusive else "<"
        high = "<=" if test.high_inclusive else "<"
        return f"({x} is not None and {test.low!r} {low} {x} {high} {test.high!r})"
    if isinstance(test, InTest):
        return f"{x} in {const(frozenset(test.values))}"
    parts = [emit_test(t, x, const) for t in test.tests]
    if any(p is None for p in parts):
        return None if isinstance(test, OrTest) else "False"
    joined = " or ".join(p for p in parts if p is not None)
    if isinstance(test, OrTest):
        return f"({joined})"
    return f"({x} is not None and not ({joined}))"


def test_matches(test: Test, x: Any) -> bool:
    """Interpret a unary test (the generated code's meaning, used to precompute indexes)."""
    if isinstance(test, AnyTest):
        return True
    if x is None:
        return False
    if isinstance(test, EqTest):
        return bool(x == test.value)
    if isinstance(test, CmpTest):
        return bool(_OPS[test.op](x, test.value))
    if isinstance(test, RangeTest):
        low = x >= test.low if test.low_inclusive else x > test.low
        high = x <= test.high if test.high_inclusive else x < test.high
        return bool(low and high)
    if isinstance(test, InTest):
        return x in test.values
    hit = any(test_matches(t, x) for t in test.tests)
    return hit if isinstance(test, OrTest) else not hit


_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def bounds(test: Test) -> list[Any] | None:
    """The numbers at which a test's result can change; None if it is not a numeric test."""
    if isinstance(test, AnyTest):
        return []
    if isinstance(test, EqTest | CmpTest):
        values: list[Any] = [test.value]
    elif isinstance(test, RangeTest):
        values = [test.low, test.high]
    elif isinstance(test, InTest):
        values = list(test.values)
    else:
        nested = [bounds(t) for t in test.tests]
        if any(b is None for b in nested):
            return None
        return [v for b in nested for v in b or ()]
    return values if all(_num(v) for v in values) else None


def interval_index(tests: list[Test], first: bool) -> tuple[list[Any], tuple[Any, ...], Any] | None:
    """Precompute which of ``tests`` (rows, in order) match on each stretch of a number line.

    Returns the sorted breakpoints P, the results R (R[2i] for values between P[i-1] and
    P[i], R[2i+1] for P[i] itself) and the result for an unknown value. A result is the first
    matching position (or -1) when ``first``, else the tuple of matching positions.
    """
    points: set[Any] = set()
    for test in tests:
        found = bounds(test)
        if found is None:
            return None
        points.update(found)
    ordered = sorted(points)

    def result(x: Any) -> Any:
        hits = [k for k, test in enumerate(tests) if test_matches(test, x)]
        if first:
            return hits[0] if hits else -1
        return tuple(hits)

    results = []
    for i in range(len(ordered) + 1):
        if i == 0:
            sample = math.ceil(ordered[0]) - 1 if ordered else 0
        elif i == len(ordered):
            sample = math.floor(ordered[-1]) + 1
        else:
            found = _between(ordered[i - 1], ordered[i])
            sample = ordered[i] if found is None else found  # nothing between: never used
        results.append(result(sample))
        if i < len(ordered):
            results.append(result(ordered[i]))
    return ordered, tuple(results), result(None)


def _between(low: Any, high: Any) -> Any:
    """A number strictly between two breakpoints, or None when neither an int nor a float is.

    Any such number stands for the whole stretch: every test compares it with the breakpoints
    alone, and Python compares ints with floats exactly. The obvious midpoint does not serve:
    ``(a + b) / 2`` is a float, which may round onto a breakpoint above 2**53 (and overflows
    for ints beyond the float range), and ``a + 1`` is ``a`` for a large float.
    """
    least_int = math.floor(low) + 1
    if least_int < high:
        return least_int
    try:
        least_float = float(low)
    except OverflowError:  # an int beyond every float
        return None
    if least_float <= low:
        least_float = math.nextafter(least_float, math.inf)
    return least_float if least_float < high else None


def equality_values(test: Test) -> tuple[Any, ...] | None:
    """The values an equality-style test accepts (for indexing), or None if it is not one."""
    if isinstance(test, EqTest):
        return (test.value,)
    if isinstance(test, InTest):
        return test.values
    if isinstance(test, OrTest):
        values: list[Any] = []
        for t in test.tests:
            inner = equality_values(t)
            if inner is None:
                return None
            values.extend(inner)
        return tuple(values)
    return None


# -- output columns -----------------------------------------------------------------------------


def output_type(values: Sequence[Any], computed: Sequence[Type] = ()) -> Type | None:
    """The type of an output column: the common type of its literal values and of its
    computed cells' expressions (``computed``); None if it mixes types."""
    types = [t for t in (value_type(v) for v in values) if t is not None]
    types.extend(t.plain() for t in computed)
    if not types:
        return None
    if all(t.numeric for t in types):
        return NUMBER if any(t.kind == "number" for t in types) else INTEGER
    first = types[0]
    if any(t.kind != first.kind for t in types):
        return None
    return first
