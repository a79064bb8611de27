"""The engine at the edges of the number line and of the cell syntax, as docs/language.md says.

Interval tables answer as the same rows tested one by one; arithmetic that overflows or gives
NaN is unknown, reported in the decision's errors, never a failed decision and never a
non-finite number in it; numbers print in templates as JavaScript prints them; an output cell
in double quotes is the string inside.
"""

from __future__ import annotations

import contextlib
import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from engine import RulesetError, compile_ruleset
from engine.compiler import index as engine_index
from engine.compiler.generate import tables as engine_generate_tables
from tests.reference import decide

from .helpers import document

# -- interval tables ---------------------------------------------------------------------------

HUGE = [
    2**52,
    2**53,
    2**53 + 1,
    10**16,
    10**16 + 1,
    10**16 + 2,
    2.0**53,
    1e16,
    1e308,
    1.7976931348623157e308,
    -1.7976931348623157e308,
    2**1024,
    10**400,
    -(10**400),
]
POINTS = st.one_of(
    st.integers(-20, 20),
    st.sampled_from([0.1, 0.5, -0.25, 2.5]),
    st.sampled_from(HUGE),
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(),
)


def _literal(value: Any) -> str:
    return json.dumps(value)


@st.composite
def number_cells(draw: st.DrawFn) -> Any:
    """An input cell over a number: a comparison, an equality, a range, a list or their mix."""
    kind = draw(st.sampled_from(["cmp", "eq", "range", "list", "or", "not", "any"]))
    if kind == "any":
        return "-"
    if kind == "cmp":
        return f"{draw(st.sampled_from(['<', '<=', '>', '>=']))} {_literal(draw(POINTS))}"
    if kind == "eq":
        return _literal(draw(POINTS))
    if kind == "range":
        low, high = sorted([draw(POINTS), draw(POINTS)])
        opener, closer = draw(st.sampled_from("[(")), draw(st.sampled_from("])"))
        return f"{opener}{_literal(low)}..{_literal(high)}{closer}"
    if kind == "list":
        return _literal(draw(st.lists(POINTS, min_size=1, max_size=3)))
    inner = ", ".join(_literal(v) for v in draw(st.lists(POINTS, min_size=1, max_size=2)))
    return f"not({inner})" if kind == "not" else f"{inner}, > {_literal(draw(POINTS))}"


def _near(point: Any) -> list[Any]:
    """A point and the numbers nearest it on each side, as ints and as floats."""
    found = [point]
    if isinstance(point, float):
        found += [math.nextafter(point, -math.inf), math.nextafter(point, math.inf)]
        point = int(point)
    found += [point - 1, point + 1]
    with contextlib.suppress(OverflowError):
        found.append(float(point))
    return [v for v in found if not isinstance(v, float) or math.isfinite(v)]


def _table(hit: str, cells: list[Any]) -> dict[str, Any]:
    table = {"id": "t", "hit": hit, "inputs": ["interaction.amount"], "outputs": ["k"]}
    return document(tables=[{**table, "rows": [[cell, k] for k, cell in enumerate(cells)]}])


def _without_intervals(doc: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    """The same document compiled with every table tested row by row."""
    with monkeypatch.context() as patched:
        patched.setattr(engine_generate_tables, "INDEX_MIN_ROWS", 10**9)
        patched.setattr(engine_index, "INDEX_MIN_ROWS", 10**9)
        return compile_ruleset(doc, strict=False)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    hit=st.sampled_from(["first", "collect", "rule_order", "unique"]),
    cells=st.lists(number_cells(), min_size=8, max_size=16),
    extra=st.lists(POINTS, max_size=4),
)
def test_interval_tables_answer_as_their_rows_tested_one_by_one(
    hit: str, cells: list[Any], extra: list[Any]
) -> None:
    """For every value, huge ints and floats included, a table searched by intervals gives
    what the same rows tested in order give, and what the reference interpreter gives."""
    doc = _table(hit, cells)
    # Not strict: a unique table's overlapping rows are evaluated too, not refused.
    indexed = compile_ruleset(doc, strict=False)
    with pytest.MonkeyPatch.context() as monkeypatch:
        plain = _without_intervals(doc, monkeypatch)
    assert "_bisect" not in plain.source
    points = {v for cell in cells for v in json.loads(f"[{_numbers_of(cell)}]")}
    for value in [None, 0, *(v for p in [*points, *extra, *HUGE] for v in _near(p))]:
        note(f"value {value!r}")
        context = {"interaction": {"amount": value}}
        expected = plain.evaluate(context).to_dict()["tables"]["t"]
        assert indexed.evaluate(context).to_dict()["tables"]["t"] == expected
        assert decide(doc, context)["tables"]["t"] == expected


def _numbers_of(cell: str) -> str:
    """The numbers a cell names, as a JSON list's inside."""
    text = cell
    for token in ("not(", ")", "(", "[", "]", "<=", ">=", "<", ">", ".."):
        text = text.replace(token, " , " if token == ".." else " ")
    return ",".join(part.strip() for part in text.split(",") if part.strip() not in ("", "-"))


@pytest.mark.parametrize(
    ("cells", "value", "row"),
    [
        pytest.param(["> 1e308"], 1.7976931348623157e308, 0, id="beyond-the-last-float-point"),
        pytest.param(["< -1e308"], -1.7976931348623157e308, 0, id="below-the-first-float-point"),
        pytest.param(
            ["10000000000000002", "> 10000000000000000"],
            10000000000000001,
            1,
            id="an-int-between-points-above-2**53",
        ),
        pytest.param([f"> {10**400}"], 10**400 + 1, 0, id="a-point-beyond-every-float"),
        pytest.param([f"[{10**400}..{10**400 + 2}]"], 1.7976931348623157e308, -1, id="huge-range"),
    ],
)
def test_interval_tables_are_exact_beyond_2_to_the_53(
    cells: list[str], value: Any, row: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first matching row, with enough rows before it for the interval search, is the one
    the rows tested in order find, however large the points and the value."""
    padding = [f"[{k}..{k}.5]" for k in range(8)]
    doc = _table("first", padding + cells)
    expected = None if row < 0 else {"k": len(padding) + row}
    compiled = compile_ruleset(doc)
    assert "_bisect" in compiled.source
    context = {"interaction": {"amount": value}}
    assert compiled.evaluate(context).tables["t"] == expected
    assert _without_intervals(doc, monkeypatch).evaluate(context).tables["t"] == expected


# -- arithmetic that leaves the numbers --------------------------------------------------------

# The expression, the values, and the error the operation that failed is reported with.
NOT_FINITE = "the result of `{}` is not a finite number"
OVERFLOWS = [
    pytest.param(
        "interaction.amount * 10",
        {"amount": 1e308},
        NOT_FINITE.format("interaction.amount * 10"),
        id="float-overflow",
    ),
    pytest.param(
        "interaction.amount + interaction.amount",
        {"amount": 1e308},
        NOT_FINITE.format("interaction.amount + interaction.amount"),
        id="sum-overflow",
    ),
    pytest.param(
        # inf - inf would be NaN: the parts are unknown already, and are what is reported.
        "interaction.amount * 10 - interaction.amount * 10",
        {"amount": 1e308},
        NOT_FINITE.format("interaction.amount * 10"),
        id="inf-minus-inf",
    ),
    pytest.param(
        "interaction.amount / 0.5",
        {"amount": 1e308},
        NOT_FINITE.format("interaction.amount / 0.5"),
        id="division-overflow",
    ),
    pytest.param(
        "history.contacts_7d / 3",
        {"contacts_7d": 10**400},
        NOT_FINITE.format("history.contacts_7d / 3"),
        id="int-division",
    ),
    pytest.param(
        "history.contacts_7d * 0.5",
        {"contacts_7d": 10**400},
        NOT_FINITE.format("history.contacts_7d * 0.5"),
        id="huge-int-to-float",
    ),
    pytest.param(
        "history.contacts_7d % 1.5",
        {"contacts_7d": 10**400},
        NOT_FINITE.format("history.contacts_7d % 1.5"),
        id="huge-int-modulo",
    ),
    pytest.param(
        "history.contacts_7d * history.contacts_7d * 1.0",
        {"contacts_7d": 10**200},
        NOT_FINITE.format("history.contacts_7d * history.contacts_7d * 1.0"),
        id="int-product-to-float",
    ),
    pytest.param(
        "interaction.amount / 0",
        {"amount": 1.0},
        "division by zero in `interaction.amount / 0`",
        id="division-by-zero",
    ),
    pytest.param(
        "history.contacts_7d % 0",
        {"contacts_7d": 7},
        "modulo by zero in `history.contacts_7d % 0`",
        id="modulo-by-zero",
    ),
]


def _context(values: dict[str, Any]) -> dict[str, Any]:
    history = {k: v for k, v in values.items() if k == "contacts_7d"}
    interaction = {k: v for k, v in values.items() if k == "amount"}
    return {"history": history, "interaction": interaction}


@pytest.mark.parametrize(("expression", "values", "error"), OVERFLOWS)
@pytest.mark.parametrize("extra", [{}, {"trace": True}])
def test_arithmetic_that_overflows_is_unknown(
    expression: str, values: dict[str, Any], error: str, extra: dict[str, Any]
) -> None:
    """Overflow, NaN and division by zero make the expression unknown: neither it nor its
    negation fires, a message prints it as ``?``, and the decision is valid JSON whose errors
    name the operation for each rule it left unknown (not for the one that holds anyway), as
    the reference interpreter says."""
    doc = document(
        eligibility=[
            {"id": "above", "when": f"{expression} > 0", "offer": "o"},
            {"id": "not-above", "when": f"not ({expression} > 0)", "offer": "o"},
            {"id": "or-true", "when": f"{expression} > 0 or true", "offer": "o"},
        ],
        alerts=[
            {
                "id": "a",
                "when": "true",
                "severity": "info",
                "message": f"value {{{expression}}}",
                "on": ["decision"],
            }
        ],
    )
    context = _context(values)
    decision = compile_ruleset(doc).evaluate(context, **extra).to_dict()
    assert [e["rule"] for e in decision["eligible"]] == ["or-true"]
    assert decision["alerts"][0]["message"] == "value ?"
    assert decision["errors"] == [
        {"rule": "above", "error": error},
        {"rule": "not-above", "error": error},
        {"rule": "a", "error": error + " in the message"},
    ]
    json.dumps(decision, allow_nan=False)
    reference = decide(doc, context)
    assert reference["eligible"] == [{"rule": "or-true", "offer": "o"}]
    assert reference["alerts"][0]["message"] == "value ?"
    assert reference["errors"] == decision["errors"]


@pytest.mark.parametrize(
    ("column", "aggregate", "expected"),
    [
        pytest.param([1e308, 1e308], "sum", None, id="float-sum-overflows"),
        pytest.param([1e308, 1e308, -1e308], "sum", None, id="overflow-on-the-way"),
        pytest.param([10**400, 1.5], "sum", None, id="huge-int-and-float"),
        pytest.param([10**400, 1], "sum", 10**400 + 1, id="ints-are-exact"),
        pytest.param([1e308, 1.7976931348623157e308], "max", 1.7976931348623157e308, id="max"),
        pytest.param([-1e308, 1e308], "min", -1e308, id="min"),
    ],
)
def test_table_aggregates_are_never_infinite(
    column: list[Any], aggregate: str, expected: Any
) -> None:
    """A collect table's sum that leaves the floats is unknown (null), in the decision and
    for the rules that read it, and reported once, on the table; min, max and integer sums
    are what they are."""
    table = {
        "id": "t",
        "hit": "collect",
        "aggregate": aggregate,
        "inputs": ["interaction.amount"],
        "outputs": ["total"],
        "rows": [["-", value] for value in column],
    }
    doc = document(
        tables=[table],
        eligibility=[
            {"id": "known", "when": "not missing(interaction.amount) and true", "offer": "o"},
            {"id": "read", "when": "tables.t.total > 0 or tables.t.total <= 0", "offer": "o"},
        ],
    )
    context = {"interaction": {"amount": 1}}
    decision = compile_ruleset(doc).evaluate(context).to_dict()
    assert decision["tables"]["t"] == {"total": expected}
    assert ("read" in [e["rule"] for e in decision["eligible"]]) is (expected is not None)
    overflowed = aggregate == "sum" and expected is None
    errors = [{"table": "t", "error": "the sum of total is not a finite number"}]
    assert decision["errors"] == (errors if overflowed else [])
    json.dumps(decision, allow_nan=False)
    reference = decide(doc, context)
    assert reference["tables"]["t"] == {"total": expected}
    assert reference["errors"] == decision["errors"]


# -- numbers in templates ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "printed"),
    [
        pytest.param(5.0, "5", id="whole-float"),
        pytest.param(-0.0, "0", id="negative-zero"),
        pytest.param(0.9, "0.9", id="fraction"),
        pytest.param(123.456, "123.456", id="decimals"),
        pytest.param(1e15 + 0.5, "1000000000000000.5", id="long-fraction"),
        pytest.param(1e16, "10000000000000000", id="1e16"),
        pytest.param(2.0**60, "1152921504606847000", id="shortest-digits-then-zeros"),
        pytest.param(1e20, "100000000000000000000", id="1e20"),
        pytest.param(1e21, "1e+21", id="1e21"),
        pytest.param(1.25e21, "1.25e+21", id="exponent-with-fraction"),
        pytest.param(1.7976931348623157e308, "1.7976931348623157e+308", id="largest-float"),
        pytest.param(1e-6, "0.000001", id="1e-6"),
        pytest.param(3e-5, "0.00003", id="3e-5"),
        pytest.param(1e-7, "1e-7", id="1e-7"),
        pytest.param(-1.5e-10, "-1.5e-10", id="small-negative"),
        pytest.param(5e-324, "5e-324", id="smallest-float"),
        pytest.param(10**21, "1000000000000000000000", id="integers-print-in-full"),
        pytest.param(-(2**64), "-18446744073709551616", id="negative-integer-in-full"),
    ],
)
def test_numbers_print_as_javascript_prints_them(value: Any, printed: str) -> None:
    """A number in a message prints as docs/language.md says, and as the reference prints it."""
    kind = "integer" if isinstance(value, int) else "number"
    doc = {
        "ruleset": "t",
        "context": {"c.x": kind},
        "alerts": [
            {"id": "a", "when": "true", "severity": "info", "message": "{c.x}", "on": ["decision"]}
        ],
    }
    context = {"c": {"x": value}}
    assert compile_ruleset(doc).evaluate(context).to_dict()["alerts"][0]["message"] == printed
    assert decide(doc, context)["alerts"][0]["message"] == printed


# -- output cells ------------------------------------------------------------------------------


@pytest.mark.parametrize("hit", ["first", "collect", "priority"])
def test_an_output_cell_in_double_quotes_is_the_string_inside(hit: str) -> None:
    """``'"new"'`` in an output cell (and in ``values``) is the string ``new``, as in an input
    cell and in DMN; an escaped quote inside stays."""
    outputs: list[Any] = ["label"]
    if hit == "priority":
        outputs = [{"name": "label", "values": ['"new"', 'say "hi"', "old"]}]
    table = {
        "id": "t",
        "hit": hit,
        "inputs": ["interaction.amount"],
        "outputs": outputs,
        "rows": [["> 5", '"new"'], ["> 3", '"say \\"hi\\""'], ["-", "old"]],
    }
    read = '"new" in tables.t.label' if hit == "collect" else 'tables.t.label == "new"'
    doc = document(tables=[table], eligibility=[{"id": "new", "when": read, "offer": "o"}])
    context = {"interaction": {"amount": 10}}
    decision = compile_ruleset(doc).evaluate(context).to_dict()
    expected = {"label": ["new", 'say "hi"', "old"]} if hit == "collect" else {"label": "new"}
    assert decision["tables"]["t"] == expected
    assert decide(doc, context)["tables"]["t"] == expected
    assert [e["rule"] for e in decision["eligible"]] == ["new"]


def test_an_output_cell_in_double_quotes_that_is_not_one_string_is_refused() -> None:
    """A quoted output cell that is not one JSON string is refused at deploy, saying how to
    write it, rather than kept with its quotes."""
    table = {
        "id": "t",
        "hit": "first",
        "inputs": ["interaction.amount"],
        "outputs": ["label"],
        "rows": [["-", '"new" "old"']],
    }
    with pytest.raises(RulesetError) as raised:
        compile_ruleset(document(tables=[table]))
    message = str(raised.value)
    assert "tables[0].rows[0][1]" in message
    assert "not one JSON string" in message
