"""What a deploy finds beyond type errors (engine/analysis.py): overlapping rows of unique
tables (errors, with an input matching both), rows that never match or never win, gaps of
tables marked complete, and conditions that contradict themselves (warnings) — each located,
none of them false, and checked against the evaluation itself on every slot of the inputs."""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import json
import math
import re
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from engine import RulesetError, compile_ruleset
from engine.analysis import Column, Line, _fields, _gaps, _groups, analyze_table
from engine.expr import BOOLEAN, INTEGER, NUMBER, STRING, Type
from engine.tables import parse_cell

from .helpers import document

TIER = Type("string", enum=frozenset({"bronze", "silver", "gold", "platinum"}))


def table(hit: str, inputs: list[str], rows: list[list[Any]], **extra: Any) -> dict[str, Any]:
    """A document with one table ``t`` whose rows are ``rows`` (input cells) and an output."""
    return document(
        tables=[
            {
                "id": "t",
                "hit": hit,
                "inputs": inputs,
                "outputs": ["o"],
                "rows": [[*cells, k] for k, cells in enumerate(rows)],
                **extra,
            }
        ]
    )


def warnings(doc: dict[str, Any] | str) -> list[str]:
    return [w.message for w in compile_ruleset(doc).warnings]


def errors(doc: dict[str, Any] | str) -> list[str]:
    with pytest.raises(RulesetError) as refused:
        compile_ruleset(doc)
    return [p.message for p in refused.value.errors]


# -- overlaps of unique tables ------------------------------------------------------------------


def test_overlapping_unique_rows_refuse_the_document_naming_both_rows_and_an_input() -> None:
    doc = table(
        "unique",
        ["customer.tier", "customer.tenure_months"],
        [['"gold"', "< 12"], ['"silver"', "-"], ['"gold"', "[12..36)"], ['"gold"', ">= 24"]],
    )
    assert errors(doc) == [
        "table 't' rows 3 and 4 overlap: customer.tier = \"gold\", "
        "customer.tenure_months = 24 matches both"
    ]


def test_an_overlap_is_located_at_the_later_row() -> None:
    text = """\
ruleset: credit
context:
  customer.tier: {type: string, enum: [gold, silver]}
  customer.tenure_months: integer
tables:
  - id: credit
    hit: unique
    inputs: [customer.tier, customer.tenure_months]
    outputs: [days]
    rows:
      - ['"gold"', "< 24", 1]
      - ['"gold"', ">= 24", 2]
      - ["-", "[12..30]", 3]
"""
    with pytest.raises(RulesetError) as refused:
        compile_ruleset(text, filename="credit.yaml")
    assert [str(p) for p in refused.value.errors] == [
        "credit.yaml:13:9: table 'credit' rows 1 and 3 overlap: customer.tier = \"gold\", "
        "customer.tenure_months = 12 matches both"
    ]


@pytest.mark.parametrize(
    ("field", "cells"),
    [
        pytest.param("interaction.amount", ["< 10", ">= 10"], id="less-then-at-least"),
        pytest.param("interaction.amount", ["<= 10", "> 10"], id="at-most-then-more"),
        pytest.param("interaction.amount", ["[0..10)", "[10..20)", "[20..30]"], id="half-open"),
        pytest.param("interaction.amount", ["(0..10]", "(10..20]", "<= 0"], id="open-low"),
        pytest.param("interaction.amount", ["[1..5], [10..20]", "(5..10)"], id="disjunction"),
        pytest.param("interaction.amount", ["1, 7", "not(1, 7)"], id="negation"),
        pytest.param("interaction.amount", ["10", "10.5", "< 10", "> 10.5"], id="points"),
        pytest.param("customer.tenure_months", ["<= 9", ">= 10"], id="integers-adjacent"),
        pytest.param("customer.tenure_months", ["< 10", "(9.5..10)"], id="integer-empty-gap"),
        pytest.param("customer.tenure_months", ["[1..1.5]", "(1..2]"], id="integer-float-bounds"),
        pytest.param(
            "interaction.amount",
            ["< 9007199254740993", "> 9007199254740992.0"],
            id="no-float-between-2**53-and-the-next-int",
        ),
        pytest.param(
            "customer.tier",
            ['"gold"', '["silver", "bronze"]', 'not("gold", "silver", "bronze")'],
            id="enum",
        ),
        pytest.param("interaction.channel", ['"phone"', 'not("phone")'], id="string"),
        pytest.param("interaction.channel", ['< "m"', '>= "m"'], id="string-order"),
        pytest.param("customer.vip", [True, False], id="boolean"),
    ],
)
def test_rows_that_no_input_matches_together_do_not_overlap(field: str, cells: list[Any]) -> None:
    doc = table("unique", [field], [[c] for c in cells])
    assert not [w for w in warnings(doc) if "overlap" in w]


@pytest.mark.parametrize(
    ("field", "cells", "witness"),
    [
        pytest.param("interaction.amount", ["<= 10", ">= 10"], "10", id="closed-ends-meet"),
        pytest.param("interaction.amount", ["< 10", "(9.5..10)"], "9.75", id="number-between"),
        pytest.param("interaction.amount", ["2", "2.0"], "2", id="int-equals-float"),
        pytest.param("customer.tenure_months", ["[1..1.5]", "1"], "1", id="integer-in-float-range"),
        pytest.param("customer.tenure_months", ["> 2.5", "< 4"], "3", id="integer-between-floats"),
        pytest.param("customer.tier", ['["gold", "silver"]', 'not("gold")'], '"silver"', id="enum"),
        pytest.param("interaction.channel", ['not("phone")', "-"], '"other"', id="string-other"),
        pytest.param("customer.vip", ["-", True], "true", id="boolean"),
        pytest.param("interaction.amount", ["not(< 5)", "[1..5]"], "5", id="negated-range"),
    ],
)
def test_overlap_witnesses_are_exact_at_the_edges(
    field: str, cells: list[Any], witness: str
) -> None:
    doc = table("unique", [field], [[c] for c in cells])
    assert errors(doc) == [f"table 't' rows 1 and 2 overlap: {field} = {witness} matches both"]


def test_huge_integers_and_non_finite_cells() -> None:
    """Integers beyond every float are compared exactly; ``Infinity`` and ``NaN``, which JSON's
    decoder would read, are refused as cells (an index over them could not be built)."""
    big = 10**400
    doc = table(
        "unique", ["customer.tenure_months"], [[f"<= {big}"], [f"> {big}"], [f"[{big}..{big + 2}]"]]
    )
    assert errors(doc) == [
        f"table 't' rows 1 and 3 overlap: customer.tenure_months = {big} matches both"
    ]
    for cell in ["< Infinity", "NaN", "[1, Infinity]"]:
        message = errors(table("first", ["interaction.amount"], [[cell], ["-"]]))[0]
        assert "numbers must be finite" in message


def test_two_columns_reading_one_field_are_one_value() -> None:
    """A range written as two columns on the same field: the value is one, in both."""
    fields = ["interaction.amount", "interaction.amount"]
    apart = table("unique", fields, [[">= 0", "< 10"], [">= 10", "-"]])
    assert warnings(apart) == []
    together = table("unique", fields, [[">= 5", "< 10"], ["< 7", "-"]])
    assert errors(together) == [
        "table 't' rows 1 and 2 overlap: interaction.amount = 5 matches both"
    ]


def test_rows_matching_every_input_overlap_on_any_input() -> None:
    assert errors(table("unique", ["customer.tier"], [["-"], ["-"]])) == [
        "table 't' rows 1 and 2 overlap: every input matches both"
    ]


def test_expression_inputs_overlap_only_where_both_cells_are_dashes() -> None:
    """``len(...)`` is never negative: ``< 0`` and ``< 5`` share no value it can take, so the
    analysis, which does not know the expression's range, claims nothing there."""
    inputs = ["len(interaction.channel)", "customer.tier"]
    assert warnings(table("unique", inputs, [["< 0", "-"], ["< 5", "-"]])) == []
    assert errors(table("unique", inputs, [["-", '"gold"'], ["-", "-"]])) == [
        "table 't' rows 1 and 2 overlap: customer.tier = \"gold\" matches both"
    ]


def test_each_overlapping_row_is_named_with_its_first_partner_at_most_ten_times() -> None:
    rows = [["-"] for _ in range(14)]
    found = errors(table("unique", ["customer.tier"], rows))
    assert found[:2] == [
        "table 't' rows 1 and 2 overlap: every input matches both",
        "table 't' rows 1 and 3 overlap: every input matches both",
    ]
    assert found[10:] == ["table 't': 3 more rows overlap an earlier row (not listed)"]


def test_not_strict_the_overlap_is_a_warning_and_the_table_evaluates() -> None:
    """As a revision stored before is compiled again: it serves, the runtime reports."""
    doc = table("unique", ["customer.tier"], [['"gold"'], ['["gold", "silver"]']])
    compiled = compile_ruleset(doc, strict=False)
    assert [w.message for w in compiled.warnings] == [
        "table 't' rows 1 and 2 overlap: customer.tier = \"gold\" matches both"
    ]
    decision = compiled.evaluate({"customer": {"tier": "gold"}}).to_dict()
    assert decision["errors"] == [
        {"table": "t", "error": "hit policy unique, but rows 1, 2 all match"}
    ]
    assert compiled.at_revision(3).warnings == compiled.warnings
    with pytest.raises(dataclasses.FrozenInstanceError):
        compiled.warnings = ()  # type: ignore[misc]


def test_a_thousand_row_unique_table_is_analysed_in_a_moment() -> None:
    """Rows on a 40 × 25 grid of regions and amount bands: disjoint, so no finding; the
    rows split apart field by field instead of being compared pair by pair."""
    rows = [[f'"r{i}"', f"[{j * 10}..{j * 10 + 10})"] for i in range(40) for j in range(25)]
    doc = table("unique", ["interaction.channel", "interaction.amount"], rows)
    started = time.perf_counter()
    assert warnings(doc) == []
    assert time.perf_counter() - started < 10  # about 0.2 s, most of it generating code
    cells = [[parse_cell(c) for c in row] for row in rows]
    columns = [Column("interaction.channel", STRING), Column("interaction.amount", NUMBER)]
    started = time.perf_counter()
    assert analyze_table("t", "unique", columns, cells) == []
    assert time.perf_counter() - started < 2  # about 15 ms


def test_a_table_too_large_to_analyse_gets_one_warning_and_deploys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import engine.analysis

    monkeypatch.setattr(engine.analysis, "MAX_BITS", 100)
    rows = [[f'"p{k}"'] for k in range(20)] + [['"p1"']]
    assert warnings(table("unique", ["interaction.channel"], rows)) == [
        "table 't' is too large to analyse (21 rows, 20 values of interaction.channel in its "
        "cells): its rows were not checked for overlaps, gaps or rows that never win"
    ]


# -- rows that never match or never win -----------------------------------------------------------


def test_a_first_row_an_earlier_row_always_takes_can_never_win() -> None:
    doc = table(
        "first",
        ["customer.tier", "interaction.amount"],
        [['"gold"', "[0..600)"], ['["gold", "silver"]', "<= 500"], ['"gold"', "[425..475)"]],
    )
    assert warnings(doc) == [
        "table 't' row 3 can never win: every input that matches it matches row 1 first"
    ]


def test_a_row_covered_by_earlier_rows_together_names_them() -> None:
    doc = table(
        "first",
        ["interaction.amount"],
        [["< 10"], ["[10..20]"], ["> 20"], ["[5..25]"], ["-"]],
    )
    assert warnings(doc) == [
        "table 't' row 4 can never win: every input that matches it matches one of rows 1, 2, "
        "3 first",
    ]


def test_a_dash_row_still_wins_for_an_unknown_input() -> None:
    """Every tier has its row, yet ``-`` also matches an unknown tier, which none of them do."""
    rows = [['"bronze"'], ['"silver"'], ['"gold"'], ['"platinum"'], ["-"]]
    assert warnings(table("first", ["customer.tier"], rows)) == []
    rows = [["-"], ['"gold"']]
    assert warnings(table("first", ["customer.tier"], rows)) == [
        "table 't' row 2 can never win: every input that matches it matches row 1 first"
    ]


def test_expression_inputs_shadow_only_with_the_same_test_or_a_dash() -> None:
    inputs = ["customer.tenure_months * 2", "customer.tier"]
    rows = [["< 5", '"gold"'], ["< 6", '"gold"'], ["< 5", "-"], ["< 5", '"gold"'], ["-", "-"]]
    assert warnings(table("first", inputs, rows)) == [
        "table 't' row 4 can never win: every input that matches it matches row 1 first"
    ]


@pytest.mark.parametrize("hit", ["unique", "first", "collect"])
def test_a_cell_no_value_passes_is_a_row_that_never_matches(hit: str) -> None:
    doc = table("collect", ["customer.tenure_months"], [["(9..10)"], ["[10..20]"]])
    doc["tables"][0]["hit"] = hit
    assert warnings(doc) == [
        "table 't' row 1 can never match: no value of customer.tenure_months passes its cell"
    ]


# -- gaps of complete tables -----------------------------------------------------------------------


@pytest.mark.parametrize("field", ["interaction.amount", "customer.tenure_months"])
def test_a_complete_table_reports_the_numbers_no_row_covers(field: str) -> None:
    doc = table("first", [field], [["< 10"], ["> 20"]], complete=True)
    assert warnings(doc) == [
        f"table 't' is marked complete, but no row matches {field} in [10..20]"
    ]
    doc = table("first", [field], [["< 10"], [">= 10"]], complete=True)
    assert warnings(doc) == []
    assert warnings(table("first", [field], [["< 10"], ["> 20"]])) == []  # not marked


def test_integer_gaps_name_their_first_and_last_integer() -> None:
    doc = table(
        "unique", ["customer.tenure_months"], [["<= 9"], ["(10.5..20)"], [">= 20"]], complete=True
    )
    assert warnings(doc) == [
        "table 't' is marked complete, but no row matches customer.tenure_months = 10"
    ]
    doc = table("unique", ["interaction.amount"], [["< 0"], ["(0..1]"]], complete=True)
    assert warnings(doc) == [
        "table 't' is marked complete, but no row matches interaction.amount = 0",
        "table 't' is marked complete, but no row matches interaction.amount > 1",
    ]


def test_a_complete_table_reports_the_enum_values_and_booleans_no_row_names() -> None:
    doc = table("first", ["customer.tier"], [['"gold"'], ['"silver"']], complete=True)
    assert warnings(doc) == [
        'table \'t\' is marked complete, but no row matches customer.tier in ["bronze", "platinum"]'
    ]
    doc = table("first", ["customer.vip"], [[True]], complete=True)
    assert warnings(doc) == [
        "table 't' is marked complete, but no row matches customer.vip = false"
    ]


def test_a_gap_under_values_of_an_earlier_input_names_them() -> None:
    doc = table(
        "unique",
        ["customer.tier", "interaction.amount"],
        [
            ['["gold", "silver"]', "< 100"],
            ['["gold", "silver"]', ">= 200"],
            ['["bronze", "platinum"]', "-"],
        ],
        complete=True,
    )
    assert warnings(doc) == [
        "table 't' is marked complete, but no row matches customer.tier in "
        '["gold", "silver"], interaction.amount in [100..200)'
    ]


def test_strings_without_an_enum_name_what_the_rows_cover() -> None:
    doc = table("first", ["interaction.channel"], [['"phone"'], ['"chat"']], complete=True)
    assert warnings(doc) == [
        "table 't' is marked complete, but no row matches interaction.channel not in "
        '["chat", "phone"]'
    ]


def test_a_gap_is_located_at_the_complete_key() -> None:
    text = """\
ruleset: limits
context:
  interaction.amount: number
tables:
  - id: limit
    hit: first
    complete: true
    inputs: [interaction.amount]
    outputs: [limit]
    rows:
      - ["< 10", 1]
"""
    assert [str(w) for w in compile_ruleset(text, filename="l.yaml").warnings] == [
        "l.yaml:7:15: table 'limit' is marked complete, but no row matches interaction.amount >= 10"
    ]


# -- contradicting conditions ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "reason"),
    [
        (
            "customer.tenure_months > 5 and customer.tenure_months < 3",
            "customer.tenure_months > 5 and customer.tenure_months < 3 cannot both be true",
        ),
        (
            'customer.tier == "gold" and customer.tier == "silver"',
            'customer.tier == "gold" and customer.tier == "silver" cannot both be true',
        ),
        (
            'customer.tier in ["gold"] and customer.tier == "silver"',
            'customer.tier in ["gold"] and customer.tier == "silver" cannot both be true',
        ),
        (
            'interaction.channel in ["a"] and interaction.channel == "b"',
            'interaction.channel in ["a"] and interaction.channel == "b" cannot both be true',
        ),
        (
            "customer.tenure_months > 5 and customer.tenure_months < 6",
            "customer.tenure_months > 5 and customer.tenure_months < 6 cannot both be true",
        ),
        (
            "3 < customer.tenure_months < 2",
            "customer.tenure_months > 3 and customer.tenure_months < 2 cannot both be true",
        ),
        (
            "customer.vip and not customer.vip",
            "customer.vip and not customer.vip cannot both be true",
        ),
        (
            'history.contacts_7d >= 2 and (customer.tier == "gold" and not '
            "(history.contacts_7d >= 1))",
            "history.contacts_7d >= 2 and history.contacts_7d < 1 cannot both be true",
        ),
        ("customer.tenure_months == 2.5", "customer.tenure_months == 2.5 is never true"),
        ("customer.tier in []", "customer.tier in [] is never true"),
        (
            'customer.tier != "gold" and customer.tier != "silver" and customer.tier != '
            '"bronze" and customer.tier != "platinum"',
            'customer.tier != "gold", customer.tier != "silver", customer.tier != "bronze" '
            'and customer.tier != "platinum" cannot all be true',
        ),
        (
            "interaction.amount >= 1 and interaction.amount <= 2 and interaction.amount != 1 "
            "and interaction.amount != 2 and interaction.amount > 2",
            "interaction.amount <= 2 and interaction.amount > 2 cannot both be true",
        ),
    ],
)
def test_conditions_that_contradict_themselves_are_warned_about(
    condition: str, reason: str
) -> None:
    doc = document(eligibility=[{"id": "r", "when": condition, "offer": "o"}])
    assert warnings(doc) == [f"eligibility rule 'r' can never fire: {reason}"]


@pytest.mark.parametrize(
    "condition",
    [
        "customer.tenure_months > 5 and customer.tenure_months < 7",
        "interaction.amount > 5 and interaction.amount < 6",
        'customer.tier in ["gold"] or customer.tier == "silver"',
        'interaction.channel != "phone"',
        'customer.tier != "gold" and customer.tier != "silver"',
        "customer.tenure_months > 5 and history.contacts_7d < 3",
        "not (customer.tenure_months > 5 and customer.tenure_months < 3)",
        "customer.tenure_months + 1 > 5 and customer.tenure_months < 3",
        "missing(customer.tier) and customer.tenure_months < 3",
        "customer.tenure_months == 2.0",
        "true",
        "false",
    ],
)
def test_conditions_that_can_hold_are_not_warned_about(condition: str) -> None:
    doc = document(eligibility=[{"id": "r", "when": condition, "offer": "o"}])
    assert warnings(doc) == []


def test_every_section_and_tree_branches_are_analysed_each_located_at_its_when() -> None:
    text = """\
ruleset: desk
context:
  customer.tier: {type: string, enum: [gold, silver]}
  answers.age: integer
eligibility:
  - {id: e, when: 'customer.tier == "gold" and customer.tier == "silver"', offer: o}
escalation:
  - {id: s, when: 'customer.tier == "gold" and customer.tier != "gold"', queue: q, priority: 1}
alerts:
  - id: a
    when: customer.tier in [] and customer.tier == "gold"
    severity: info
    message: hi
trees:
  - id: t
    start: q
    nodes:
      q:
        ask: How old?
        answer: answers.age
        next:
          - {when: answers.age > 60 and answers.age < 10, goto: end}
          - {goto: end}
      end: {outcome: done}
"""
    assert [str(w) for w in compile_ruleset(text, filename="d.yaml").warnings] == [
        "d.yaml:6:19: eligibility rule 'e' can never fire: customer.tier == \"gold\" and "
        'customer.tier == "silver" cannot both be true',
        "d.yaml:8:19: escalation rule 's' can never apply: customer.tier == \"gold\" and "
        'customer.tier != "gold" cannot both be true',
        "d.yaml:11:11: alert rule 'a' can never fire: customer.tier in [] is never true",
        "d.yaml:22:20: branch 1 of node 'q' can never be taken: answers.age > 60 and "
        "answers.age < 10 cannot both be true",
    ]


# -- against the evaluation itself ---------------------------------------------------------------

FIELDS: dict[str, Type] = {
    "customer.tenure_months": INTEGER,
    "interaction.amount": NUMBER,
    "customer.tier": TIER,
    "customer.vip": BOOLEAN,
    "interaction.channel": STRING,
}
NUMBERS = [-1, 0, 2.5, 3, 10, 10.0, 12]
STRINGS = ["a", "b", "m"]


def _number_cells() -> st.SearchStrategy[str]:
    n = st.sampled_from(NUMBERS)
    pair = st.tuples(n, n).map(sorted)
    return st.one_of(
        st.just("-"),
        st.builds(lambda op, v: f"{op} {v}", st.sampled_from(["<", "<=", ">", ">="]), n),
        st.builds(
            lambda p, o, c: f"{o}{p[0]}..{p[1]}{c}",
            pair,
            st.sampled_from("[("),
            st.sampled_from("])"),
        ),
        st.builds(str, n),
        st.builds(lambda p: f"[{p[0]}, {p[1]}]", pair),
        st.builds(lambda v: f"not(< {v})", n),
        st.builds(lambda p: f"{p[0]}, {p[1]}", pair),
        st.builds(lambda p: f"not([{p[0]}..{p[1]}])", pair),
    )


def _string_cells(values: list[str], ordered: bool) -> st.SearchStrategy[str]:
    v = st.sampled_from(values).map(json.dumps)
    options = [
        st.just("-"),
        v,
        st.lists(v, min_size=1, max_size=2, unique=True).map(lambda xs: f"[{', '.join(xs)}]"),
        v.map(lambda x: f"not({x})"),
    ]
    if ordered:
        options.append(st.builds(lambda op, x: f"{op} {x}", st.sampled_from(["<", ">="]), v))
        options.append(v.map(lambda x: f'[{x}.."m")'))
    return st.one_of(*options)


CELLS: dict[str, st.SearchStrategy[Any]] = {
    "customer.tenure_months": _number_cells(),
    "interaction.amount": _number_cells(),
    "customer.tier": _string_cells(sorted(TIER.enum or ()), ordered=False),
    "customer.vip": st.sampled_from([True, False, "-", "not(true)"]),
    "interaction.channel": _string_cells(STRINGS, ordered=True),
}


def _samples(field: str) -> list[Any]:
    """Values of ``field`` on every slot the cells above can make, and unknown."""
    kind = FIELDS[field]
    if kind.enum is not None:
        return [None, *sorted(kind.enum)]
    if kind.kind == "boolean":
        return [None, True, False]
    if kind.kind == "string":
        found = {"", "zz"}
        for s in STRINGS:
            found |= {s, s + "\x00", s + "z"}
        return [None, *sorted(found)]
    points = sorted(set(NUMBERS))
    found = set()
    for p in points:
        found |= {p, p - 1, p + 1, math.floor(p), math.ceil(p)}
    for a, b in itertools.pairwise(points):
        found.add((a + b) / 2)
    if kind.kind == "integer":
        found = {int(v) for v in found if float(v).is_integer()}
    return [None, *sorted(found)]


@st.composite
def tables(draw: st.DrawFn) -> tuple[list[str], list[list[Any]]]:
    fields = draw(st.lists(st.sampled_from(sorted(FIELDS)), min_size=1, max_size=2, unique=True))
    inputs = [*fields, *draw(st.lists(st.sampled_from(fields), max_size=1))]  # maybe a repeat
    rows = draw(st.lists(st.tuples(*(CELLS[f] for f in inputs)).map(list), min_size=2, max_size=7))
    return inputs, rows


def _context(values: dict[str, Any]) -> dict[str, Any]:
    context: dict[str, Any] = {}
    for path, value in values.items():
        if value is not None:
            head, tail = path.split(".")
            context.setdefault(head, {})[tail] = value
    return context


def _matches(compiled: Any, values: dict[str, Any]) -> list[int]:
    found: list[int] = compiled.evaluate(_context(values)).to_dict()["tables"]["t"]["o"]
    return found


def _slot(line: Line, value: Any) -> int:
    if line.finite:
        return line.points.index(value)
    i = bisect.bisect_left(line.points, value)
    return 2 * i + 1 if i < len(line.points) and line.points[i] == value else 2 * i


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables())
def test_findings_agree_with_the_evaluation_on_every_slot(drawn: tuple[Any, Any]) -> None:
    """Evaluated as a collect table (its output the row number) on a value of every slot of
    each field: every overlap the analysis reports matches both rows at its witness and every
    pair that matches together is reported; the rows it says never win never do and every
    other row does; every gap's witness matches no row and every unmatched input is in a gap."""
    inputs, rows = drawn
    note(f"inputs {inputs}, rows {rows}")
    fields = list(dict.fromkeys(inputs))
    compiled = compile_ruleset(table("collect", inputs, rows))
    grid: list[dict[str, Any]] = [{}]
    for f in fields:
        grid = [{**g, f: v} for g in grid for v in _samples(f)]
    matched = [(g, _matches(compiled, g)) for g in grid]
    columns = [Column(f, FIELDS[f]) for f in inputs]
    cells = [[parse_cell(c) for c in row] for row in rows]

    # Overlaps: each reported pair at its witness; every pair found is reported.
    reported = {}
    for message in (f.message for f in analyze_table("t", "unique", columns, cells)):
        found = re.match(r"table 't' rows (\d+) and (\d+) overlap: (.*) matches both$", message)
        if found is None:
            continue
        a, b, witness = int(found[1]) - 1, int(found[2]) - 1, found[3]
        reported[b] = a
        values = {f: next(v for v in _samples(f) if v is not None) for f in fields}
        for part in [] if witness == "every input" else witness.split(", "):
            path, _, text = part.partition(" = ")
            values[path] = json.loads(text)
        assert {a, b} <= set(_matches(compiled, values)), message
    for _, hit in matched:
        for k, b in enumerate(hit):
            if k:
                assert b in reported and reported[b] <= hit[0], (hit, reported)

    # Never winning (first) and never matching rows: exactly the rows no input makes first.
    winners = {hit[0] for _, hit in matched if hit}
    claimed = set()
    for message in (f.message for f in analyze_table("t", "first", columns, cells)):
        found = re.match(r"table 't' row (\d+) can never (win|match)", message)
        assert found is not None, message
        claimed.add(int(found[1]) - 1)
    assert claimed == set(range(len(rows))) - winners

    # Gaps: every box's witness matches no row; every known input matching none is in one.
    boxes = _gaps(_groups(_fields(columns, cells), "gaps"), len(rows))
    for box in boxes:
        values = {f: next(v for v in _samples(f) if v is not None) for f in fields}
        for group, mask in box:
            assert group.line is not None and group.field is not None
            values[group.field] = group.line.witness(mask)
        assert _matches(compiled, values) == [], (box, values)
    if len(boxes) <= 10:
        for g, hit in matched:
            if hit or any(v is None for v in g.values()):
                continue
            assert any(
                all(m >> _slot(gr.line, g[gr.field]) & 1 for gr, m in box if gr.line)
                for box in boxes
            ), g


EXPRESSION = "customer.tenure_months * 2"


@st.composite
def tables_with_an_expression(draw: st.DrawFn) -> tuple[list[str], list[list[Any]]]:
    field = draw(st.sampled_from(sorted(FIELDS)))
    inputs = draw(st.permutations([field, EXPRESSION]))
    cells = {field: CELLS[field], EXPRESSION: _number_cells()}
    rows = draw(st.lists(st.tuples(*(cells[f] for f in inputs)).map(list), min_size=2, max_size=6))
    return inputs, rows


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables_with_an_expression())
def test_findings_on_an_expression_input_are_never_false(drawn: tuple[Any, Any]) -> None:
    """An input that is an expression (``customer.tenure_months * 2``, only even numbers) is
    read only where that is safe: what is reported still holds on every slot."""
    inputs, rows = drawn
    note(f"inputs {inputs}, rows {rows}")
    fields = list(dict.fromkeys(f if f != EXPRESSION else "customer.tenure_months" for f in inputs))
    compiled = compile_ruleset(table("collect", inputs, rows))
    grid: list[dict[str, Any]] = [{}]
    for f in fields:
        grid = [{**g, f: v} for g in grid for v in _samples(f)]
    matched = [(g, _matches(compiled, g)) for g in grid]
    columns = [Column(None, INTEGER) if f == EXPRESSION else Column(f, FIELDS[f]) for f in inputs]
    cells = [[parse_cell(c) for c in row] for row in rows]
    for message in (f.message for f in analyze_table("t", "unique", columns, cells)):
        found = re.match(r"table 't' rows (\d+) and (\d+) overlap: (.*) matches both$", message)
        if found is None:  # a row that never matches: checked with the first table's
            continue
        values = {f: next(v for v in _samples(f) if v is not None) for f in fields}
        for part in [] if found[3] == "every input" else found[3].split(", "):
            path, _, text = part.partition(" = ")
            values[path] = json.loads(text)
        assert {int(found[1]) - 1, int(found[2]) - 1} <= set(_matches(compiled, values))
    winners = {hit[0] for _, hit in matched if hit}
    for message in (f.message for f in analyze_table("t", "first", columns, cells)):
        found = re.match(r"table 't' row (\d+) can never (win|match)", message)
        assert found is not None and int(found[1]) - 1 not in winners, message
    for box in _gaps(_groups(_fields(columns, cells), "gaps"), len(rows)):
        for g, hit in matched:
            inside = all(
                g[gr.field] is not None and m >> _slot(gr.line, g[gr.field]) & 1
                for gr, m in box
                if gr.line is not None and gr.field is not None
            )
            assert not (inside and hit), (box, g, hit)
