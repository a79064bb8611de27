"""Computed output cells: a table's output cell written as a template, ``"{bill.amount * 0.1}"``
or ``"Hello {customer.name}"``, computed on each evaluation for the rows that win, under every
hit policy; typed by its expression; read by rules and by other tables; checked at deploy
with positions; and costing nothing to tables that have none."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from audit.recording import decision_record
from engine import RulesetError, compile_ruleset
from engine.counterfactuals import rule_inputs

FIXTURES = Path(__file__).parent / "fixtures"

CONTEXT: dict[str, Any] = {
    "customer.tier": {"type": "string", "enum": ["bronze", "silver", "gold"]},
    "customer.name": "string",
    "customer.tenure": "integer",
    "customer.vip": "boolean",
    "customer.email": {"type": "string", "classification": "pii"},
    "customer.since": "datetime",
    "bill.amount": "number",
    "bill.items": "integer",
}


def tables(*found: dict[str, Any], **sections: Any) -> dict[str, Any]:
    return {"ruleset": "t", "context": dict(CONTEXT), "tables": list(found), **sections}


def outputs(document: dict[str, Any], context: dict[str, Any]) -> Any:
    # Not strict: overlapping unique rows are evaluated, as a stored revision would be.
    return compile_ruleset(document, strict=False).evaluate(context).tables


GOLD = {"customer": {"tier": "gold", "name": "Ann", "tenure": 7}, "bill": {"amount": 80}}


def refused(document: dict[str, Any] | str) -> list[str]:
    with pytest.raises(RulesetError) as caught:
        compile_ruleset(document, filename="doc.yaml")
    return [str(problem) for problem in caught.value.errors]


# -- each hit policy ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hit", "extra", "expected"),
    [
        pytest.param("first", {}, {"x": 8.0, "y": "first"}, id="first"),
        pytest.param("unique", {}, None, id="unique-two-rows-match"),
        pytest.param("any", {}, None, id="any-rows-disagree"),
        pytest.param(
            "priority",
            {"outputs": ["x", {"name": "y", "values": ["second", "first", "third"]}]},
            {"x": 87, "y": "second"},
            id="priority-ranks-by-the-literal-output",
        ),
        pytest.param("collect", {}, {"x": [8.0, 87, 1], "y": ["first", "second", "third"]}),
        pytest.param("rule_order", {}, {"x": [8.0, 87, 1], "y": ["first", "second", "third"]}),
        pytest.param(
            "output_order",
            {"outputs": ["x", {"name": "y", "values": ["third", "second", "first"]}]},
            {"x": [1, 87, 8.0], "y": ["third", "second", "first"]},
            id="output_order-ranks-by-the-literal-output",
        ),
    ],
)
def test_each_hit_policy_gives_the_computed_values_of_the_rows_that_win(
    hit: str, extra: dict[str, Any], expected: Any
) -> None:
    found = {
        "id": "t",
        "hit": hit,
        "inputs": ["customer.tier"],
        "outputs": ["x", "y"],
        "rows": [
            ['"gold"', "{bill.amount * 0.1}", "first"],
            ["-", "{bill.amount + customer.tenure}", "second"],
            ['"gold", "silver"', 1, "third"],
        ],
        **extra,
    }
    assert outputs(tables(found), GOLD)["t"] == expected


@pytest.mark.parametrize(
    ("aggregate", "expected"),
    # count counts the matching rows, as it does for literal outputs (null ones included).
    [("sum", 96.0), ("min", 1), ("max", 87), ("count", 4)],
)
def test_collect_aggregates_computed_values(aggregate: str, expected: Any) -> None:
    found = {
        "id": "t",
        "hit": "collect",
        "aggregate": aggregate,
        "inputs": ["customer.tier"],
        "outputs": ["x"],
        "rows": [
            ['"gold"', "{bill.amount * 0.1}"],
            ["-", "{bill.amount + customer.tenure}"],
            ["-", 1],
            ["-", "{bill.items}"],  # unknown here: skipped, as null outputs are
        ],
    }
    assert outputs(tables(found), GOLD)["t"] == {"x": expected}


def test_unique_gives_its_one_rows_computed_value_with_or_without_a_trace() -> None:
    found = {
        "id": "t",
        "hit": "unique",
        "inputs": ["customer.tier"],
        "outputs": ["x"],
        "rows": [['"gold"', "{bill.amount * 2}"], ['"silver"', 3]],
    }
    document = tables(found, eligibility=[{"id": "r", "when": "tables.t.x > 5", "offer": "o"}])
    compiled = compile_ruleset(document)
    context = {"customer": {"tier": "gold"}, "bill": {"amount": 4}}
    for traced in (False, True):
        decision = compiled.evaluate(context, trace=traced)
        assert decision.tables == {"t": {"x": 8}}
        assert decision.eligible_rules == ["r"]
        assert decision.matched_rows == {"t": [1]}


def test_any_accepts_rows_whose_computed_values_agree_and_reports_those_that_differ() -> None:
    found = {
        "id": "t",
        "hit": "any",
        "inputs": ["customer.tier"],
        "outputs": ["x"],
        "rows": [['"gold"', "{bill.amount / 2}"], ["-", 40], ["-", "{bill.items * 2}"]],
    }
    compiled = compile_ruleset(tables(found))
    agreeing = compiled.evaluate({**GOLD, "bill": {"amount": 80, "items": 20}})
    assert agreeing.tables == {"t": {"x": 40.0}}
    assert agreeing.to_dict()["errors"] == []
    differing = compiled.evaluate({**GOLD, "bill": {"amount": 80, "items": 3}})
    assert differing.tables == {"t": None}
    assert differing.to_dict()["errors"] == [
        {
            "table": "t",
            "error": "hit policy any, but rows 1, 2, 3 all match and their outputs differ",
        }
    ]


def test_a_cell_is_computed_only_for_its_rows_and_only_when_they_win() -> None:
    found = {
        "id": "t",
        "hit": "first",
        "inputs": ["customer.tier"],
        "outputs": ["x"],
        "rows": [['"gold"', "{100 / bill.amount}"], ["-", 5]],
    }
    compiled = compile_ruleset(tables(found))
    assert compiled.evaluate({"customer": {"tier": "silver"}, "bill": {"amount": 0}}).tables == {
        "t": {"x": 5}
    }
    # Division by zero is unknown, as anywhere: the output is null, nothing fails.
    assert compiled.evaluate({"customer": {"tier": "gold"}, "bill": {"amount": 0}}).tables == {
        "t": {"x": None}
    }


# -- types --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cells", "rule", "context", "value"),
    [
        pytest.param(["{customer.tenure * 2}", 3], "tables.t.x == 14", GOLD, 14, id="integer"),
        pytest.param(["{customer.tenure / 2}", 3], "tables.t.x == 3.5", GOLD, 3.5, id="number"),
        pytest.param(["{customer.tenure}", 0.5], "tables.t.x > 6.5", GOLD, 7, id="integer-mixes"),
        pytest.param(["{customer.vip}", False], "tables.t.x", {"customer": {"vip": True}}, True),
        pytest.param(
            ["{customer.tier}", "other"],
            'tables.t.x == "gold"',
            GOLD,
            "gold",
            id="a-field-with-an-enum-gives-a-plain-string",
        ),
        pytest.param(
            ["Dear {customer.name} ({customer.tenure})", '"none"'],
            'startswith(tables.t.x, "Dear Ann")',
            GOLD,
            "Dear Ann (7)",
            id="text-with-parts-is-a-string",
        ),
        pytest.param(
            ['{"Dear " + customer.name}', "x"],
            'tables.t.x == "Dear Ann"',
            GOLD,
            "Dear Ann",
            id="string-concatenation",
        ),
        pytest.param(
            ["{{literal}} {{braces}}", "x"],
            'tables.t.x == "{literal} {braces}"',
            GOLD,
            "{literal} {braces}",
            id="only-doubled-braces-is-literal-text",
        ),
        pytest.param(
            ['"{not computed}"', "x"],
            'tables.t.x == "{not computed}"',
            GOLD,
            "{not computed}",
            id="in-double-quotes-is-the-text-itself",
        ),
    ],
)
def test_a_computed_cell_has_its_expressions_type(
    cells: list[Any], rule: str, context: dict[str, Any], value: Any
) -> None:
    found = {
        "id": "t",
        "hit": "first",
        "inputs": ["customer.tier"],
        "outputs": ["x"],
        "rows": [["-", cells[0]], ["-", cells[1]]],
    }
    document = tables(found, eligibility=[{"id": "r", "when": rule, "offer": "o"}])
    decision = compile_ruleset(document).evaluate(context)
    assert decision.tables == {"t": {"x": value}}
    assert decision.eligible_rules == ["r"]


def test_unknown_operands_give_a_null_output_and_text_prints_a_question_mark() -> None:
    found = {
        "id": "t",
        "hit": "first",
        "inputs": ["customer.tier"],
        "outputs": ["x", "y", "z"],
        "rows": [["-", "{bill.amount * 2}", "{customer.name}", "Dear {customer.name}"]],
    }
    compiled = compile_ruleset(tables(found))
    decision = compiled.evaluate({"customer": {"tier": "gold"}})
    assert decision.tables == {"t": {"x": None, "y": None, "z": "Dear ?"}}
    # What computed cells read counts as read by the table, like its inputs.
    assert decision.missing_fields == ["bill.amount", "customer.name"]


# -- what reads a computed output ---------------------------------------------------------------


def test_rules_tables_and_templates_read_the_computed_value() -> None:
    """Table ``total`` (written first) reads ``credit``'s computed output in a cell and in an
    input; rules, offer parameters and messages read both."""
    total = {
        "id": "total",
        "hit": "first",
        "inputs": ["tables.credit.amount"],
        "outputs": ["total", "band"],
        "rows": [["> 10", "{tables.credit.amount + bill.amount}", "high"], ["-", 0, "low"]],
    }
    credit = {
        "id": "credit",
        "hit": "first",
        "inputs": ["customer.tier"],
        "outputs": ["amount"],
        "rows": [['"gold"', "{bill.amount * 0.25}"], ["-", 0]],
    }
    document = tables(
        total,
        credit,
        eligibility=[
            {
                "id": "credit",
                "when": "tables.credit.amount > 10 and tables.total.total > 100",
                "offer": "credit",
                "params": {"amount": "{tables.credit.amount}"},
            }
        ],
        alerts=[
            {
                "id": "band",
                "when": 'tables.total.band == "high"',
                "severity": "info",
                "message": "Total {tables.total.total}",
            }
        ],
    )
    decision = compile_ruleset(document).evaluate(
        {"customer": {"tier": "gold"}, "bill": {"amount": 80}}
    )
    assert decision.tables == {
        "total": {"total": 100.0, "band": "high"},
        "credit": {"amount": 20.0},
    }
    assert decision.eligible_rules == []  # 100 is not > 100
    shown = compile_ruleset(document).evaluate(
        {"customer": {"tier": "gold"}, "bill": {"amount": 100}}
    )
    assert shown.eligible_rules == ["credit"]
    out = shown.to_dict()
    assert out["tables"]["total"] == {"total": 125.0, "band": "high"}
    assert out["eligible"][0]["params"] == {"amount": 25.0}
    assert out["alerts"][0]["message"] == "Total 125"


def test_the_ledger_records_what_computed_cells_read_and_the_computed_outputs() -> None:
    found = {
        "id": "t",
        "hit": "first",
        "inputs": ["customer.tier"],
        "outputs": ["x"],
        "rows": [["-", "{bill.amount * 2}"]],
    }
    decision = compile_ruleset(tables(found)).evaluate(
        {"customer": {"tier": "gold"}, "bill": {"amount": 4}}
    )
    record = decision_record(
        decision, record_id="r1", context={"customer": {"tier": "gold"}, "bill": {"amount": 4}}
    )
    assert set(record.context) == {"bill.amount", "customer.tier"}
    assert record.outputs["tables"] == {"t": {"x": 8}}


def test_counterfactual_inputs_follow_computed_cells() -> None:
    found = {
        "id": "t",
        "hit": "first",
        "inputs": ["customer.tier"],
        "outputs": ["x"],
        "rows": [["-", "{bill.amount * 2}"]],
    }
    document = tables(found, eligibility=[{"id": "r", "when": "tables.t.x > 5", "offer": "o"}])
    assert rule_inputs(compile_ruleset(document), "eligibility", 0) == [
        "bill.amount",
        "customer.tier",
    ]


# -- refused at deploy, with positions ----------------------------------------------------------

REFUSED = """\
ruleset: t
context:
  bill.amount: number
  bill.due: datetime
  customer.tier: string
  customer.email: {type: string, classification: pii}
tables:
  - id: a
    hit: first
    inputs: [customer.tier]
    outputs: [x, y, z]
    rows:
      - ["-", "{customer.tier * 2}", "{bill.due}", "{bill.amount"]
  - id: b
    hit: first
    inputs: [customer.tier]
    outputs: [x]
    rows:
      - ["-", "Dear {lower(customer.email)}"]
  - id: c
    hit: first
    inputs: [customer.tier]
    outputs: [x]
    rows:
      - ["-", "{tables.d.x + 1}"]
  - id: d
    hit: first
    inputs: [customer.tier]
    outputs: [x]
    rows:
      - ["-", "{tables.c.x + 1}"]
  - id: e
    hit: priority
    inputs: [customer.tier]
    outputs: [{name: x, values: [1, 2]}]
    rows:
      - ["-", "{bill.amount}"]
  - id: f
    hit: first
    inputs: [customer.tier]
    outputs: [x]
    rows:
      - ['"gold"', "{bill.amount}"]
      - ["-", text]
  - id: g
    hit: first
    inputs: [customer.tier]
    outputs: [x]
    rows:
      - ["-", "{tables.g.x}"]
"""


def test_what_a_computed_cell_cannot_do_is_refused_at_its_position() -> None:
    assert refused(REFUSED) == [
        "doc.yaml:13:17: cannot apply * to string and integer (customer.tier * 2); "
        "expected numbers",
        "doc.yaml:13:38: a computed output must be a string, a number or a boolean, but this "
        "cell gives a datetime (text around it, 'due {...}', makes a string)",
        "doc.yaml:13:53: unclosed '{' in template; write '{{' for a brace",
        "doc.yaml:19:15: an output cell may not read the pii field 'customer.email': table "
        "outputs are shown to agents and recorded in the ledger as they are, unmasked",
        "doc.yaml:25:15: tables read each other in a cycle: c → d → c",
        "doc.yaml:37:15: hit: priority ranks rows by the declared values of output 'x', so its "
        "cells must be literal values: a computed cell cannot be ranked (compute it in an "
        "output without values, or in a table that reads this one)",
        "doc.yaml:41:15: output 'x' mixes value types; each output column must hold one type",
        "doc.yaml:50:15: tables read each other in a cycle: g → g",
    ]


def test_an_unknown_name_in_a_cell_is_named() -> None:
    found = {
        "id": "t",
        "hit": "first",
        "inputs": ["customer.tier"],
        "outputs": ["x"],
        "rows": [["-", "{bill.amont * 2}"]],
    }
    assert refused(tables(found)) == [
        "doc.yaml: tables[0].rows[0][1]: unknown field 'bill.amont'; did you mean 'bill.amount'?"
    ]


# -- tables without computed cells pay nothing ------------------------------------------------


def test_tables_without_computed_cells_generate_the_code_they_always_did() -> None:
    """literal-tables.source is what the generator wrote for literal-tables.yaml before
    output cells could compute; tables of literal outputs must still get exactly that."""
    compiled = compile_ruleset((FIXTURES / "literal-tables.yaml").read_text())
    assert compiled.source == (FIXTURES / "literal-tables.source").read_text()


def test_only_tables_with_computed_cells_get_row_functions() -> None:
    literal = {
        "id": "plain",
        "hit": "first",
        "inputs": ["customer.tier"],
        "outputs": ["x"],
        "rows": [["-", 1]],
    }
    computed = {**literal, "id": "computed", "rows": [['"gold"', "{bill.amount}"], ["-", 2]]}
    source = compile_ruleset(tables(literal, computed)).source
    assert "def _table1_row0(A):" in source
    assert "_table0_row" not in source
    assert "_table1_row1" not in source  # a row of literal values needs no function
