"""A document's tests guard it: a decision that carries an error fails its test unless the
test expects that error, and the tests say what of the document none of them reached."""

from __future__ import annotations

from typing import Any

from engine import compile_ruleset
from engine.testing import Coverage

from .helpers import document

OVERLAPPING = {
    "id": "credit",
    "hit": "first",
    "inputs": ["customer.tier"],
    "outputs": ["amount"],
    "rows": [['"gold"', 40], ['"gold", "silver"', 25], ['"bronze"', 5]],
}
# A tree whose only branch holds for gold customers: for anyone else the walk has nowhere to
# go, and the decision carries that error.
STUCK = {
    "id": "route",
    "start": "tier",
    "nodes": {
        "tier": {"next": [{"when": 'customer.tier == "gold"', "goto": "vip"}]},
        "vip": {"outcome": "vip-line"},
    },
}


def results(tests: list[dict[str, Any]]) -> list[Any]:
    doc = document(trees=[STUCK], tests=[{**t, "tree": "route"} for t in tests])
    return compile_ruleset(doc).run_tests()


def test_a_decision_that_carries_an_error_fails_a_test_that_does_not_expect_it() -> None:
    """The walk is stuck for a bronze customer and the decision says why. A test that checks
    something else entirely still fails, naming the error."""
    (unexpected,) = results(
        [{"name": "bronze", "context": {"customer": {"tier": "bronze"}}, "expect": {"alerts": []}}]
    )
    assert not unexpected.passed
    (failure,) = unexpected.failures
    assert failure.startswith("errors: the decision carries an error (tree 'route': ")
    assert failure.endswith("; list it under expect.errors if it is meant")


def test_an_expected_error_passes_by_id_or_by_text_and_a_missing_one_fails() -> None:
    bronze = {"customer": {"tier": "bronze"}}
    gold = {"customer": {"tier": "gold"}}
    by_id, by_text, absent, clean = results(
        [
            {"name": "by id", "context": bronze, "expect": {"errors": ["route"]}},
            {"name": "by text", "context": bronze, "expect": {"errors": ["no branch"]}},
            {"name": "absent", "context": gold, "expect": {"errors": ["route"]}},
            {"name": "clean", "context": gold, "expect": {"next_step": {"outcome": "vip-line"}}},
        ]
    )
    assert by_id.passed and by_text.passed and clean.passed, (by_id, by_text, clean)
    assert absent.failures == ["errors: expected an error matching 'route', got none"]


def test_coverage_names_what_no_test_reached() -> None:
    doc = document(
        tables=[OVERLAPPING],
        eligibility=[
            {"id": "gold-offer", "when": 'customer.tier == "gold"', "offer": "o"},
            {"id": "never", "when": "customer.tenure_months > 1000", "offer": "n"},
        ],
        escalation=[
            {"id": "vip", "when": 'customer.tier == "gold"', "queue": "q", "priority": 1},
            {"id": "any", "when": "true", "queue": "q", "priority": 2},
        ],
        alerts=[{"id": "quiet", "when": "false", "severity": "info", "message": "m"}],
        tests=[{"name": "gold", "context": {"customer": {"tier": "gold"}}, "expect": {}}],
    )
    compiled = compile_ruleset(doc)
    outcome = compiled.run_tests()
    assert [r.passed for r in outcome] == [True]
    coverage = Coverage.of(compiled.model, outcome)
    assert coverage.unreached == {
        "eligibility": ["never"],
        "escalation": ["any"],  # held, but never won
        "alerts": ["quiet"],
        "table_rows": {"credit": [2, 3]},
        "tree_nodes": {},
    }
    assert (coverage.reached, coverage.total) == (3, 8)
    assert coverage.to_dict()["percent"] == 37.5
    assert coverage.lines() == [
        "eligibility rule 'never'",
        "escalation rule 'any'",
        "alerts rule 'quiet'",
        "table 'credit' rows 2, 3",
    ]
    assert Coverage.of(compiled.model, []).reached == 0
