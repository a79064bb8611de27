"""The expression language: operators, functions and three-valued logic."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime
from typing import Any

import pytest

from engine import CompiledRuleset, EvaluationError, compile_ruleset

from .helpers import document, fires, when

GOLD: dict[str, Any] = {"customer": {"tier": "gold", "tenure_months": 30, "churn_score": 0.9}}
EMPTY: dict[str, Any] = {}


@pytest.mark.parametrize(
    ("condition", "context", "expected"),
    [
        pytest.param('customer.tier == "gold"', GOLD, True, id="equality"),
        pytest.param('customer.tier != "gold"', GOLD, False, id="inequality"),
        pytest.param("customer.tenure_months >= 30", GOLD, True, id="greater-equal"),
        pytest.param("12 < customer.tenure_months <= 30", GOLD, True, id="chained"),
        pytest.param("12 < customer.tenure_months < 30", GOLD, False, id="chained-false"),
        pytest.param('customer.tier in ["gold", "platinum"]', GOLD, True, id="in-list"),
        pytest.param('customer.tier not in ["gold", "platinum"]', GOLD, False, id="not-in"),
        pytest.param('"ol" in customer.tier', GOLD, True, id="substring"),
        pytest.param("customer.tenure_months / 2 == 15", GOLD, True, id="division"),
        pytest.param("customer.tenure_months % 7 == 2", GOLD, True, id="modulo"),
        pytest.param("-customer.tenure_months < 0", GOLD, True, id="unary-minus"),
        pytest.param("customer.tenure_months * 2 + 1 == 61", GOLD, True, id="arithmetic"),
        pytest.param('customer.tier + "!" == "gold!"', GOLD, True, id="string-concat"),
        pytest.param("customer.tenure_months ** 2 == 900", GOLD, True, id="power"),
        pytest.param("2 ** -1 == 0.5", EMPTY, True, id="power-negative-exponent"),
        pytest.param("-2 ** 2 == -4", EMPTY, True, id="power-binds-tighter-than-minus"),
        pytest.param("2 ** 3 ** 2 == 512", EMPTY, True, id="power-is-right-associative"),
        pytest.param("len(customer.tier) == 4", GOLD, True, id="len"),
        pytest.param('upper(customer.tier) == "GOLD"', GOLD, True, id="upper"),
        pytest.param('lower("GOLD") == customer.tier', GOLD, True, id="lower"),
        pytest.param("abs(-customer.tenure_months) == 30", GOLD, True, id="abs"),
        pytest.param("min(customer.tenure_months, 5) == 5", GOLD, True, id="min"),
        pytest.param("max(customer.tenure_months, 5, 40) == 40", GOLD, True, id="max"),
        pytest.param("round(customer.churn_score) == 1", GOLD, True, id="round"),
        pytest.param(
            "round(customer.churn_score * 10 / 3, 2) == 3.0", GOLD, True, id="round-digits"
        ),
        pytest.param('startswith(customer.tier, "go")', GOLD, True, id="startswith"),
        pytest.param('endswith(customer.tier, "ld")', GOLD, True, id="endswith"),
        pytest.param('contains(customer.tier, "ol")', GOLD, True, id="contains-string"),
        pytest.param('matches(customer.tier, "^g[a-z]+$")', GOLD, True, id="matches"),
        pytest.param("not customer.tenure_months > 40", GOLD, True, id="not"),
        pytest.param("true", EMPTY, True, id="literal-true"),
        pytest.param("True and not False", EMPTY, True, id="python-literals"),
    ],
)
def test_operator(condition: str, context: dict[str, Any], expected: bool) -> None:
    """Each operator and function computes what the language reference says."""
    assert fires(condition, context) is expected


@pytest.mark.parametrize(
    ("condition", "fired"),
    [
        pytest.param("customer.tenure_months > 3", False, id="comparison-unknown"),
        pytest.param("not customer.tenure_months > 3", False, id="not-unknown"),
        pytest.param(
            'customer.tenure_months > 3 and customer.tier == "silver"',
            False,
            id="unknown-and-false",
        ),
        pytest.param(
            'customer.tenure_months > 3 or customer.tier == "gold"', True, id="unknown-or-true"
        ),
        pytest.param(
            'not (customer.tenure_months > 3 and customer.tier == "silver")',
            True,
            id="not-of-unknown-and-false-is-true",
        ),
        pytest.param(
            'not (customer.tenure_months > 3 or customer.tier == "gold")',
            False,
            id="not-of-unknown-or-true-is-false",
        ),
        pytest.param("missing(customer.tenure_months)", True, id="missing-true"),
        pytest.param("not missing(customer.tier)", True, id="missing-false"),
        pytest.param("customer.tenure_months + 1 > 0", False, id="arithmetic-unknown"),
        pytest.param("len(customer.email) > 0", False, id="function-unknown"),
        pytest.param("customer.tenure_months / 0 > 0", False, id="division-by-zero"),
        pytest.param("not (customer.churn_score / 0 > 0)", False, id="division-by-zero-not"),
        pytest.param("customer.churn_score ** 100000 < 1", True, id="power-underflows-to-0"),
        pytest.param("customer.tenure_months ** 2 > 0", False, id="power-unknown"),
        pytest.param("10 ** 400 > 0 or 10 ** 400 <= 0", False, id="power-beyond-floats"),
        pytest.param("(-8) ** 0.5 > 0 or (-8) ** 0.5 <= 0", False, id="power-not-real"),
        pytest.param("0 ** -1 > 0 or 0 ** -1 <= 0", False, id="power-of-zero-negative"),
    ],
)
def test_three_valued_logic(condition: str, fired: bool) -> None:
    """Unknown values follow SQL's three-valued logic; a rule fires only when true."""
    assert fires(condition, {"customer": {"tier": "gold", "churn_score": 0.5}}) is fired


def test_null_in_context_is_unknown() -> None:
    """A field given as JSON null reads as unknown, exactly like an absent one."""
    compiled = when("missing(customer.tier)")
    assert compiled.evaluate({"customer": {"tier": None}}).eligible_rules == ["r"]


@pytest.mark.parametrize(
    ("condition", "cases", "fired"),
    [
        pytest.param(
            'any(c.status == "open" for c in customer.open_cases)',
            [{"status": "closed"}, {"status": "open"}],
            True,
            id="any-true",
        ),
        pytest.param(
            'any(c.status == "open" for c in customer.open_cases)',
            [{"status": "closed"}],
            False,
            id="any-false",
        ),
        pytest.param(
            "all(c.priority < 3 for c in customer.open_cases)",
            [{"priority": 1}, {"priority": 2}],
            True,
            id="all-true",
        ),
        pytest.param(
            "all(c.priority < 3 for c in customer.open_cases)",
            [{"priority": 1}, {"priority": 5}],
            False,
            id="all-false",
        ),
        pytest.param(
            "all(c.priority < 3 for c in customer.open_cases)",
            [{"priority": 1}, {}],
            False,
            id="all-with-unknown-is-unknown",
        ),
        pytest.param(
            "not all(c.priority < 3 for c in customer.open_cases)",
            [{"priority": 1}, {}],
            False,
            id="not-all-with-unknown-is-unknown",
        ),
        pytest.param(
            "not any(c.priority > 3 for c in customer.open_cases)",
            [{"priority": 1}, {"priority": 2}],
            True,
            id="not-any",
        ),
        pytest.param(
            "all(c.priority < 3 for c in customer.open_cases)", [], True, id="all-of-empty"
        ),
    ],
)
def test_quantifiers(condition: str, cases: list[dict[str, Any]], fired: bool) -> None:
    """any() and all() over a list of objects follow three-valued logic per item."""
    assert fires(condition, {"customer": {"open_cases": cases}}) is fired


def test_quantifier_over_scalars_and_min_of_list() -> None:
    """Scalar list items are read as the loop variable; min()/max() take one list."""
    context = {"customer": {"scores": [0.2, 0.9], "tags": ["vip", "churn-risk"]}}
    assert fires("any(s > 0.8 for s in customer.scores)", context)
    assert fires("max(customer.scores) == 0.9 and min(customer.scores) == 0.2", context)
    assert fires('"vip" in customer.tags and contains(customer.tags, "churn-risk")', context)
    assert not fires("max(customer.scores) > 0", {"customer": {"scores": []}})


def test_time_functions_use_the_given_now() -> None:
    """days_since, hours_since and now() read only the ``now`` passed to evaluate."""
    context = {"customer": {"last_payment_at": "2026-11-12T10:00:00Z"}}
    now = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    assert fires("days_since(customer.last_payment_at) == 10", context, now=now)
    assert fires("hours_since(customer.last_payment_at) == 240", context, now=now)
    assert fires("customer.last_payment_at < now()", context, now=now)
    assert not fires("days_since(customer.last_payment_at) >= 0", context)


def test_count_reads_the_counter_snapshot() -> None:
    """count() reads the snapshot passed to evaluate; an absent counter is 0."""
    compiled = when('count("payment_failed", within="7d") >= 3')
    assert compiled.counters_needed == frozenset({("payment_failed", "7d")})
    snapshot = {"payment_failed": {"7d": 3}}
    assert compiled.evaluate({}, counters=snapshot).eligible_rules == ["r"]
    assert compiled.evaluate({}, counters={"payment_failed": {"24h": 9}}).eligible_rules == []
    assert compiled.evaluate({}).eligible_rules == []
    assert fires('count("contact", within="7d") == 0', {})


def test_nested_paths_read_nested_objects() -> None:
    """A three-segment path reads an object inside an object."""
    assert fires('customer.address.city == "Leeds"', {"customer": {"address": {"city": "Leeds"}}})
    assert not fires('customer.address.city == "Leeds"', {"customer": {"address": "Leeds"}})


@pytest.mark.parametrize(
    ("context", "field", "got"),
    [
        pytest.param(
            {"customer": {"tenure_months": "30"}},
            "customer.tenure_months",
            "string '30'",
            id="string-for-integer",
        ),
        pytest.param(
            {"customer": {"tenure_months": 2.5}},
            "customer.tenure_months",
            "number",
            id="float-for-integer",
        ),
        pytest.param(
            {"customer": {"tenure_months": True}},
            "customer.tenure_months",
            "boolean",
            id="boolean-for-integer",
        ),
        pytest.param(
            {"customer": {"tier": "diamond"}},
            "customer.tier",
            "string 'diamond'",
            id="outside-enum",
        ),
        pytest.param(
            {"customer": {"last_payment_at": "yesterday"}},
            "customer.last_payment_at",
            "string 'yesterday'",
            id="bad-datetime",
        ),
        pytest.param(
            {"customer": {"churn_score": float("nan")}},
            "customer.churn_score",
            "non-finite number",
            id="nan",
        ),
        pytest.param({"customer": "gold"}, "customer", "string 'gold'", id="root-not-object"),
    ],
)
def test_wrong_typed_values_are_unknown_and_reported(
    context: dict[str, Any], field: str, got: str
) -> None:
    """A value of the wrong type reads as unknown and is listed in invalid_fields."""
    compiled = when(
        "missing(customer.tenure_months) and missing(customer.tier) and "
        "missing(customer.last_payment_at) and missing(customer.churn_score)"
    )
    decision = compiled.evaluate(context)
    assert decision.eligible_rules == ["r"]
    invalid = decision.to_dict()["invalid_fields"]
    assert [(i["field"], i["got"]) for i in invalid] == [(field, got)]


def test_list_items_of_the_wrong_type_are_dropped() -> None:
    """Items that do not match ``items`` are left out, and the field is reported."""
    compiled = when("len(customer.tags) == 2")
    decision = compiled.evaluate({"customer": {"tags": ["a", 3, "b"]}})
    assert decision.eligible_rules == ["r"]
    assert decision.to_dict()["invalid_fields"][0]["field"] == "customer.tags"


@pytest.mark.parametrize("extra", [{}, {"trace": True}, {"now": "2026-11-22T10:00:00Z"}])
def test_arithmetic_python_cannot_do_is_unknown(extra: dict[str, Any]) -> None:
    """An integer too large for a float, multiplied by one, is unknown (neither the rule nor
    its negation fires), whichever way evaluate is called; the decision does not fail, and
    its errors say which operation left each rule unknown."""
    compiled = compile_ruleset(
        document(
            eligibility=[
                {"id": "over", "when": "history.contacts_7d * 1.5 > 3", "offer": "o"},
                {"id": "not-over", "when": "not (history.contacts_7d * 1.5 > 3)", "offer": "o"},
            ]
        )
    )
    decision = compiled.evaluate({"history": {"contacts_7d": 10**400}}, **extra)
    assert decision.eligible_rules == []
    error = "the result of `history.contacts_7d * 1.5` is not a finite number"
    assert decision.to_dict()["errors"] == [
        {"rule": "over", "error": error},
        {"rule": "not-over", "error": error},
    ]


@pytest.mark.parametrize("with_tree", [False, True])
def test_evaluate_takes_its_arguments_by_position_and_by_name(with_tree: bool) -> None:
    """A compiled ruleset's evaluate has the documented signature, trees or not (without
    them it is generated with the rules)."""
    sections: dict[str, Any] = {"eligibility": [{"id": "r", "when": "true", "offer": "o"}]}
    if with_tree:
        sections["trees"] = [{"id": "t", "start": "n", "nodes": {"n": {"outcome": "done"}}}]
    compiled = compile_ruleset(document(**sections))
    documented = list(inspect.signature(CompiledRuleset.evaluate).parameters.values())[1:]
    assert [
        (p.name, p.kind, p.default)
        for p in inspect.signature(compiled.evaluate).parameters.values()
    ] == [(p.name, p.kind, p.default) for p in documented]
    context = {"customer": {"tier": "gold"}}
    by_position = compiled.evaluate(context, None, None, None, False).to_dict()
    by_name = compiled.evaluate(
        context=context,
        answers=None,
        now=None,
        counters=None,
        trace=False,
        as_of=None,
        tree=None,
        trigger="decision",
    ).to_dict()
    assert by_position == by_name == compiled.evaluate(context).to_dict()
    assert by_name["eligible"][0]["rule"] == "r"


def test_evaluate_refuses_bad_arguments() -> None:
    """Arguments of the wrong shape raise EvaluationError with a plain message."""
    compiled = when("true")
    with pytest.raises(EvaluationError, match="JSON object"):
        compiled.evaluate(["not", "a", "mapping"])  # type: ignore[arg-type]
    with pytest.raises(EvaluationError, match="invalid now"):
        compiled.evaluate({}, now="tuesday")
    with pytest.raises(EvaluationError, match="trigger"):
        compiled.evaluate({}, trigger="lunch")
    with pytest.raises(EvaluationError, match="no tree"):
        compiled.evaluate({}, tree="nope")


@pytest.mark.parametrize(
    ("condition", "tags", "expected"),
    [
        ('customer.tags == ["a"]', ["a"], True),
        ('customer.tags == ["a"]', ["b"], False),
        ('customer.tags == ["a", "b"]', ["b", "a"], False),  # a list is in order
        ('["a", "b"] == customer.tags', ["a", "b"], True),
        ('customer.tags != ["a"]', ["a"], False),
        ('customer.tags != ["a"]', ["a", "a"], True),
        ("customer.tags == []", [], True),
        ('"a" in customer.tags and customer.tags == ["a"]', ["a"], True),
    ],
)
def test_a_list_compared_with_a_list_literal_is_that_list(
    condition: str, tags: list[str], expected: bool
) -> None:
    assert fires(condition, {"customer": {"tags": tags}}) is expected
    assert fires(condition, {"customer": {}}) is False  # unknown: the rule does not fire


def test_min_and_max_of_a_list_holding_an_unknown_are_unknown() -> None:
    """A collect table's list holds null for a row whose output is null: the least of it is
    not known, and the evaluation does not fail."""
    doc = document(
        tables=[
            {
                "id": "t",
                "hit": "collect",
                "inputs": ["customer.tier"],
                "outputs": ["n"],
                "rows": [["-", 3], ['"gold"', None], ["-", 1]],
            }
        ],
        eligibility=[
            {"id": "low", "when": "min(tables.t.n) < 2", "offer": "o"},
            {"id": "high", "when": "max(tables.t.n) >= 0", "offer": "o"},
        ],
    )
    compiled = compile_ruleset(doc)
    assert compiled.evaluate({"customer": {"tier": "silver"}}).eligible_rules == ["low", "high"]
    assert compiled.evaluate({"customer": {"tier": "gold"}}).eligible_rules == []
