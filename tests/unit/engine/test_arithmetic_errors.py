"""Arithmetic that fails is reported in the decision's errors, where it left something unknown.

docs/language.md: division or ``%`` by zero, and a result that is not a finite number, make the
expression unknown and add an entry to ``errors`` when that is what left a rule's condition, a
table's input or sum, a message or ``say`` part or a tree branch unknown; never a failed
decision, never an exception from ``to_dict()``, never ``inf`` or ``NaN`` in the JSON. What
the evaluation did not evaluate, or decided anyway, reports nothing.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from engine import compile_ruleset
from engine.decision import Decision
from tests.reference import decide

from .helpers import document

# The site an expression is put in, with how its unknown shows.
ROW_WHEN_UNKNOWN = [[">= 0", "known"], ["< 0", "known"], ["-", "unknown"]]

FAILURES = [
    pytest.param(
        "interaction.amount * 10",
        {"interaction": {"amount": 1e308}},
        "the result of `interaction.amount * 10` is not a finite number",
        id="float-overflow",
    ),
    pytest.param(
        "1e308 * 10",
        {},
        "the result of `1e308 * 10` is not a finite number",
        id="literal-overflow",
    ),
    pytest.param(
        "interaction.amount / history.contacts_7d",
        {"interaction": {"amount": 5.0}, "history": {"contacts_7d": 0}},
        "division by zero in `interaction.amount / history.contacts_7d`",
        id="division-by-zero",
    ),
    pytest.param(
        "customer.tenure_months % history.contacts_7d",
        {"customer": {"tenure_months": 7}, "history": {"contacts_7d": 0}},
        "modulo by zero in `customer.tenure_months % history.contacts_7d`",
        id="modulo-by-zero",
    ),
    pytest.param(
        # inf - inf is NaN: the overflowing parts are unknown first, and are what is named.
        "(interaction.amount * 10) - (interaction.amount * 10)",
        {"interaction": {"amount": 1e308}},
        "the result of `interaction.amount * 10` is not a finite number",
        id="nan-from-inf-minus-inf",
    ),
    pytest.param(
        "history.contacts_7d / 2.5",
        {"history": {"contacts_7d": 2**1100}},
        "the result of `history.contacts_7d / 2.5` is not a finite number",
        id="huge-int-divided-by-a-float",
    ),
    pytest.param(
        "history.contacts_7d * 0.5",
        {"history": {"contacts_7d": 2**1100}},
        "the result of `history.contacts_7d * 0.5` is not a finite number",
        id="huge-int-times-a-float",
    ),
]


def _valid_json(decision: Decision) -> dict[str, Any]:
    """The decision's JSON shape, which ``to_dict()`` builds without raising and JSON carries
    without ``inf`` or ``NaN``."""
    out = decision.to_dict()
    json.dumps(out, allow_nan=False)
    return out


@pytest.mark.parametrize(("expression", "context", "error"), FAILURES)
@pytest.mark.parametrize("extra", [{}, {"trace": True}])
def test_a_failed_operation_is_reported_where_it_left_a_site_unknown(
    expression: str, context: dict[str, Any], error: str, extra: dict[str, Any]
) -> None:
    """In a rule's condition, a table's input and a message part, the expression is unknown
    (no rule fires, the table's input matches only ``-``, the message prints ``?``) and each of
    those sites has its entry, as the reference interpreter says; whichever way evaluate is
    called."""
    doc = document(
        eligibility=[
            {"id": "above", "when": f"{expression} > 0", "offer": "o"},
            {"id": "not-above", "when": f"not ({expression} > 0)", "offer": "o"},
        ],
        alerts=[
            {
                "id": "say-it",
                "when": "true",
                "severity": "info",
                "message": f"value {{{expression}}}",
                "on": ["decision"],
            }
        ],
        tables=[
            {
                "id": "by-value",
                "hit": "first",
                "inputs": [expression],
                "outputs": ["seen"],
                "rows": ROW_WHEN_UNKNOWN,
            }
        ],
    )
    decision = compile_ruleset(doc).evaluate(context, **extra)
    out = _valid_json(decision)
    assert out["eligible"] == []
    assert out["tables"] == {"by-value": {"seen": "unknown"}}
    assert out["alerts"][0]["message"] == "value ?"
    assert out["errors"] == [
        {"table": "by-value", "error": error},
        {"rule": "above", "error": error},
        {"rule": "not-above", "error": error},
        {"rule": "say-it", "error": f"{error} in the message"},
    ]
    assert decide(doc, context)["errors"] == out["errors"]


@pytest.mark.parametrize(
    ("column", "error"),
    [
        pytest.param([1e308, 1e308], True, id="floats-overflow"),
        pytest.param([1e308, 1e308, -1e308], True, id="overflow-on-the-way"),
        pytest.param([2**1100, 0.5], True, id="huge-int-and-a-float"),
        pytest.param([1e308, -1e308], False, id="in-range"),
        pytest.param([2**1100, 1], False, id="integers-are-exact"),
    ],
)
def test_a_sum_aggregate_that_is_not_a_finite_number_is_reported(
    column: list[Any], error: bool
) -> None:
    """A collect table's ``sum`` that leaves the floats is null, and reported on the table,
    once: not again on the rule that reads it."""
    table = {
        "id": "credit",
        "hit": "collect",
        "aggregate": "sum",
        "inputs": ["interaction.channel"],
        "outputs": ["total"],
        "rows": [["-", value] for value in column],
    }
    doc = document(
        tables=[table],
        eligibility=[{"id": "reads", "when": "tables.credit.total > 0", "offer": "o"}],
    )
    context = {"interaction": {"channel": "voice"}}
    out = _valid_json(compile_ruleset(doc).evaluate(context))
    entry = {"table": "credit", "error": "the sum of total is not a finite number"}
    assert out["errors"] == ([entry] if error else [])
    assert (out["tables"]["credit"]["total"] is None) is error
    assert decide(doc, context)["errors"] == out["errors"]


@pytest.mark.parametrize(
    ("when", "context"),
    [
        pytest.param(
            "history.contacts_7d > 0 and interaction.amount / history.contacts_7d > 2",
            {"history": {"contacts_7d": 0}, "interaction": {"amount": 5.0}},
            id="guarded-by-and",
        ),
        pytest.param(
            "history.contacts_7d == 0 or interaction.amount / history.contacts_7d > 2",
            {"history": {"contacts_7d": 0}, "interaction": {"amount": 5.0}},
            id="guarded-by-or",
        ),
        pytest.param(
            "(interaction.amount / history.contacts_7d > 2 or true) and missing(customer.tier)",
            {"history": {"contacts_7d": 0}, "interaction": {"amount": 5.0}},
            id="decided-where-it-failed",
        ),
        pytest.param(
            "any(x > 1 or x / history.contacts_7d > 2 for x in customer.scores)",
            {"history": {"contacts_7d": 0}, "customer": {"scores": [0.5, 3.0]}},
            id="an-item-decides-any",
        ),
        pytest.param(
            "interaction.amount / history.contacts_7d > 2",
            {"interaction": {"amount": 5.0}},
            id="missing-data-is-not-an-error",
        ),
        pytest.param(
            "interaction.amount * 10 > 0",
            {"interaction": {"amount": 1e307}},
            id="nothing-failed",
        ),
    ],
)
def test_what_did_not_leave_the_site_unknown_reports_nothing(
    when: str, context: dict[str, Any]
) -> None:
    """A guard that decides the condition, an item that decides ``any``, an operand that is
    missing (reported in missing_fields instead): no entry."""
    doc = document(eligibility=[{"id": "r", "when": when, "offer": "o"}])
    out = _valid_json(compile_ruleset(doc).evaluate(context))
    assert out["errors"] == []
    assert decide(doc, context)["errors"] == []


def test_a_missing_operand_is_a_missing_field_not_an_error() -> None:
    """``a / b`` with ``b`` absent is unknown for want of data: missing_fields says so."""
    doc = document(
        eligibility=[
            {"id": "r", "when": "interaction.amount / history.contacts_7d > 2", "offer": "o"}
        ]
    )
    out = _valid_json(compile_ruleset(doc).evaluate({"interaction": {"amount": 5.0}}))
    assert out["errors"] == []
    assert out["missing_fields"] == ["history.contacts_7d"]


def test_a_failure_inside_any_is_reported_once_for_the_items_it_left_unknown() -> None:
    """Items of ``any``/``all`` are checked one by one; one operation failing on several
    items is one entry."""
    doc = document(
        eligibility=[
            {
                "id": "r",
                "when": "any(x / history.contacts_7d > 2 for x in customer.scores)",
                "offer": "o",
            }
        ]
    )
    context = {"history": {"contacts_7d": 0}, "customer": {"scores": [1.0, 2.0, 3.0]}}
    out = _valid_json(compile_ruleset(doc).evaluate(context))
    assert out["errors"] == [
        {"rule": "r", "error": "division by zero in `x / history.contacts_7d`"}
    ]
    assert decide(doc, context)["errors"] == out["errors"]


def test_only_the_rules_evaluated_report() -> None:
    """Escalation rules run by priority until one holds: a failure in one ranked after it is
    not reported, one ranked before it is; an alert on another trigger is not evaluated; the
    rules of a non-decision trigger are its alerts."""
    failing = "interaction.amount / history.contacts_7d > 1"
    doc = document(
        escalation=[
            {"id": "late", "when": failing, "queue": "q", "priority": 9},
            {"id": "holds", "when": "true", "queue": "q", "priority": 5},
            {"id": "early", "when": failing, "queue": "q", "priority": 1},
        ],
        eligibility=[{"id": "offer", "when": failing, "offer": "o"}],
        alerts=[
            {
                "id": "on-event",
                "when": failing,
                "severity": "info",
                "message": "m",
                "on": ["event"],
            },
            {
                "id": "on-decision",
                "when": failing,
                "severity": "info",
                "message": "m",
                "on": ["decision"],
            },
        ],
    )
    compiled = compile_ruleset(doc)
    context = {"interaction": {"amount": 5.0}, "history": {"contacts_7d": 0}}
    error = "division by zero in `interaction.amount / history.contacts_7d`"
    out = _valid_json(compiled.evaluate(context))
    assert out["escalation"]["rule"] == "holds"
    assert out["errors"] == [
        {"rule": "offer", "error": error},
        {"rule": "early", "error": error},
        {"rule": "on-decision", "error": error},
    ]
    assert decide(doc, context)["errors"] == out["errors"]
    event = _valid_json(compiled.evaluate(context, trigger="event"))
    assert event["errors"] == [{"rule": "on-event", "error": error}]


TREE = {
    "id": "plan",
    "start": "size",
    "nodes": {
        "size": {
            "next": [
                {"when": "interaction.amount / history.contacts_7d > 10", "goto": "big"},
                {"when": "interaction.channel == 'voice'", "goto": "small"},
                {"when": "interaction.amount % history.contacts_7d == 0", "goto": "big"},
            ]
        },
        "big": {"outcome": "big", "say": "share {interaction.amount / history.contacts_7d}"},
        "small": {"outcome": "small", "say": "share {interaction.amount * 10}"},
    },
}


DIVIDED = "division by zero in `interaction.amount / history.contacts_7d`"
REMAINDER = "modulo by zero in `interaction.amount % history.contacts_7d`"
IN_SIZE = " in a branch of node 'size'"


@pytest.mark.parametrize(
    ("channel", "amount", "node", "errors"),
    [
        pytest.param("voice", 5.0, "small", [DIVIDED + IN_SIZE], id="a-branch-before-the-taken"),
        pytest.param(
            "chat",
            5.0,
            "size",
            [DIVIDED + IN_SIZE, REMAINDER + IN_SIZE, "no branch of node 'size' holds"],
            id="every-branch-when-none-holds",
        ),
        pytest.param(
            "voice",
            1e308,
            "small",
            [
                DIVIDED + IN_SIZE,
                "the result of `interaction.amount * 10` is not a finite number"
                " in the say of node 'small'",
            ],
            id="the-say-reached",
        ),
    ],
)
def test_a_tree_reports_the_branches_it_evaluated_and_the_say_it_reached(
    channel: str, amount: float, node: str, errors: list[str]
) -> None:
    """Branches are evaluated in order up to the one taken: a failure after it is not
    reported; the say of the outcome reached is."""
    doc = document(trees=[TREE])
    context = {
        "interaction": {"amount": amount, "channel": channel},
        "history": {"contacts_7d": 0},
    }
    out = _valid_json(compile_ruleset(doc).evaluate(context, tree="plan"))
    assert out["next_step"]["node"] == node
    assert out["errors"] == [{"tree": "plan", "error": error} for error in errors]
    arithmetic = [e for e in out["errors"] if "holds" not in e["error"]]
    assert decide(doc, context, tree="plan")["errors"] == arithmetic


def test_an_error_names_the_operation_as_written() -> None:
    """The entry quotes the operation as the author wrote it, a hyphenated table id included,
    and names the table a failed input belongs to; what reads that table is not blamed."""
    doc = document(
        tables=[
            {
                "id": "refund-limit",
                "hit": "first",
                "inputs": ["interaction.channel"],
                "outputs": ["limit"],
                "rows": [["-", 0]],
            },
            {
                "id": "share",
                "hit": "first",
                "inputs": ["interaction.amount  /  tables.refund-limit.limit"],
                "outputs": ["ok"],
                "rows": [["< 1", True]],
            },
        ],
        eligibility=[{"id": "reads", "when": "tables.share.ok", "offer": "o"}],
    )
    context = {"interaction": {"amount": 5.0, "channel": "voice"}}
    out = _valid_json(compile_ruleset(doc).evaluate(context))
    assert out["errors"] == [
        {
            "table": "share",
            "error": "division by zero in `interaction.amount  /  tables.refund-limit.limit`",
        }
    ]
    assert decide(doc, context)["errors"] == out["errors"]


def test_a_ruleset_whose_arithmetic_cannot_fail_pays_nothing() -> None:
    """Integer ``+ - *`` and ``%`` by a literal other than zero cannot fail, nor can a sum
    of integers or of floats that stay in range: no diagnosis is compiled. Division, and
    arithmetic on numbers, can."""
    exact = document(
        eligibility=[
            {
                "id": "r",
                "when": "customer.tenure_months % 12 == 0 and history.contacts_7d * 2 + 1 > 3",
                "offer": "o",
            }
        ],
        tables=[
            {
                "id": "t",
                "hit": "collect",
                "aggregate": "sum",
                "inputs": ["interaction.channel"],
                "outputs": ["total"],
                "rows": [["-", 1.5], ["-", 1e300]],
            }
        ],
    )
    assert compile_ruleset(exact).diagnosis is None
    for when in ("history.contacts_7d / 2 > 1", "interaction.amount + 1 > 1"):
        fallible = document(eligibility=[{"id": "r", "when": when, "offer": "o"}])
        assert compile_ruleset(fallible).diagnosis is not None


@pytest.mark.parametrize(
    ("scores", "fires", "errors"),
    [
        pytest.param(
            [10.0],
            False,
            [{"rule": "r", "error": "the result of `x * 1e308` is not a finite number"}],
            id="every-item-overflows",
        ),
        pytest.param([10.0, 0.5], True, [], id="an-item-holds"),
    ],
)
def test_arithmetic_on_list_items_and_literals_that_overflows_is_unknown(
    scores: list[float], fires: bool, errors: list[dict[str, str]]
) -> None:
    """An operation whose operands are never unknown (list items, literals) can still leave
    the numbers: it is unknown too, and the evaluation does not fail (it once raised
    TypeError comparing None)."""
    doc = document(
        eligibility=[
            {"id": "r", "when": "any(x * 1e308 > 1 for x in customer.scores)", "offer": "o"}
        ]
    )
    context = {"customer": {"scores": scores}}
    decision = compile_ruleset(doc).evaluate(context)
    assert (decision.eligible_rules == ["r"]) is fires
    assert _valid_json(decision)["errors"] == errors
    assert decide(doc, context)["errors"] == errors


def test_a_failure_beside_missing_data_is_still_reported() -> None:
    """``a / b + c`` with ``b`` = 0 and ``c`` missing is unknown for both reasons: the division
    is an error, ``c`` a missing field."""
    doc = document(
        eligibility=[
            {
                "id": "r",
                "when": "interaction.amount / history.contacts_7d + customer.churn_score > 1",
                "offer": "o",
            }
        ]
    )
    context = {"interaction": {"amount": 5.0}, "history": {"contacts_7d": 0}}
    out = _valid_json(compile_ruleset(doc).evaluate(context))
    error = "division by zero in `interaction.amount / history.contacts_7d`"
    assert out["errors"] == [{"rule": "r", "error": error}]
    assert out["missing_fields"] == ["customer.churn_score"]
    assert decide(doc, context)["errors"] == out["errors"]
