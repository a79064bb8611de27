"""Offer parameters and tree questions written as templates: they read fields and table
outputs, are checked at deploy like messages, and are masked where they show a masked field."""

from __future__ import annotations

import json
from typing import Any

import pytest

from audit.masking import Masker
from audit.recording import decision_record, mask_shown
from engine import RulesetError, compile_ruleset

DOC: dict[str, Any] = {
    "ruleset": "credits",
    "context": {
        "customer.tier": {"type": "string", "enum": ["bronze", "gold"]},
        "customer.name": {"type": "string", "classification": "pii"},
        "bill.amount": "number",
        "answers.reason": "string",
    },
    "tables": [
        {
            "id": "credit-amount",
            "hit": "first",
            "inputs": ["customer.tier"],
            "outputs": ["credit"],
            "rows": [['"gold"', 40], ["-", 10]],
        }
    ],
    "eligibility": [
        {
            "id": "credit",
            "when": "true",
            "offer": "account-credit",
            "params": {
                "credit": "{tables.credit-amount.credit}",
                "note": "Credit of {tables.credit-amount.credit} on a bill of {bill.amount}",
                "greeting": "Dear {customer.name}",
                "limits": [{"max": "{bill.amount * 2}"}, 5],
                "braces": "{{literal}}",
                "fixed": 3,
            },
        },
        {"id": "plain", "when": "true", "offer": "plain", "params": {"max": 25}},
    ],
    "trees": [
        {
            "id": "why",
            "start": "ask",
            "nodes": {
                "ask": {
                    "ask": "Why is {customer.name} calling about {bill.amount}?",
                    "answer": "answers.reason",
                    "next": [{"goto": "done"}],
                },
                "done": {"outcome": "noted"},
            },
        }
    ],
}
CONTEXT = {"customer": {"tier": "gold", "name": "Ann Lee"}, "bill": {"amount": 12.5}}


def offers(decision: Any) -> dict[str, Any]:
    return {e["rule"]: e["params"] for e in decision.to_dict()["eligible"]}


def test_a_parameter_that_is_one_part_keeps_its_value_and_any_other_is_text() -> None:
    compiled = compile_ruleset(DOC)
    params = offers(compiled.evaluate(CONTEXT, tree="why"))
    assert params["credit"] == {
        "credit": 40,
        "note": "Credit of 40 on a bill of 12.5",
        "greeting": "Dear Ann Lee",
        "limits": [{"max": 25}, 5],
        "braces": "{literal}",
        "fixed": 3,
    }
    assert params["plain"] == {"max": 25}
    bronze = offers(compiled.evaluate({"customer": {"tier": "bronze"}}, tree="why"))["credit"]
    assert (bronze["credit"], bronze["note"], bronze["limits"][0]) == (
        10,
        "Credit of 10 on a bill of ?",
        {"max": None},
    )
    # the compiled document's own parameters are never changed by filling them in
    assert compiled.eligible_out["credit"]["params"]["credit"] == "{tables.credit-amount.credit}"


def test_a_question_is_a_template_too() -> None:
    step = compile_ruleset(DOC).evaluate(CONTEXT, tree="why").to_dict()["next_step"]
    assert step["ask"] == "Why is Ann Lee calling about 12.5?"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"credit": "{tables.credit-amount.amount}"}, "no output 'amount'"),
        ({"x": "{customer.nmae}"}, "did you mean 'customer.name'"),
        ({"x": "{bill.amount"}, "unclosed '{' in template"),
        ({"nested": [{"x": "}"}]}, "unmatched '}' in template"),
    ],
)
def test_templated_parameters_are_checked_at_deploy(params: dict[str, Any], message: str) -> None:
    doc = {**DOC, "eligibility": [{**DOC["eligibility"][0], "params": params}]}
    with pytest.raises(RulesetError) as caught:
        compile_ruleset(json.dumps(doc, indent=2), filename="credits.json")
    (problem,) = caught.value.errors
    assert message in problem.message
    assert problem.file == "credits.json" and problem.line is not None
    assert problem.path is not None and problem.path.startswith("eligibility[0].params.")


def test_a_parameter_or_question_that_shows_a_masked_field_is_masked() -> None:
    compiled = compile_ruleset(DOC)
    decision = compiled.evaluate(CONTEXT, tree="why")
    masker = Masker(b"k" * 32)
    record = decision_record(decision, record_id="d-1", context=CONTEXT, masker=masker)
    params = {e["rule"]: e["params"] for e in record.outputs["eligible"]}["credit"]
    assert params["greeting"] == "Dear " + masker.mask("Ann Lee")
    assert params["credit"] == 40 and params["note"] == "Credit of 40 on a bill of 12.5"
    assert record.outputs["next_step"]["ask"] == (
        f"Why is {masker.mask('Ann Lee')} calling about 12.5?"
    )
    assert "Ann Lee" not in json.dumps(record.outputs)
    shown = mask_shown(decision, decision.to_dict(), None, lambda value: "***")
    hidden = {e["rule"]: e["params"] for e in shown["eligible"]}["credit"]
    assert (hidden["credit"], hidden["greeting"], hidden["limits"][0]["max"]) == (
        "***",
        "Dear ***",
        "***",
    )
    assert hidden["fixed"] == 3 and hidden["braces"] == "{literal}"
