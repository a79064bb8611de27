"""evaluate is pure: same inputs, same decision; no clock; safe from many threads."""

from __future__ import annotations

import itertools
import random
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from engine import compile_ruleset

from .helpers import document

DESIGN = Path(__file__).resolve().parents[2] / "golden" / "decisions" / "design-example.yaml"


def _contexts(n: int) -> list[dict[str, object]]:
    rnd = random.Random(7)
    tiers = ["bronze", "silver", "gold", "platinum", None]
    return [
        {
            "customer": {"tier": rnd.choice(tiers), "churn_score": rnd.random()},
            "history": {"contacts_7d": rnd.randrange(5)},
            "interaction": {"amount": rnd.randrange(1000)},
        }
        for _ in range(n)
    ]


def test_same_inputs_give_the_same_decision_and_no_clock_is_read() -> None:
    """Two evaluations of the same inputs are identical; without ``now`` no time appears."""
    compiled = compile_ruleset(DESIGN.read_text())
    context = _contexts(1)[0]
    first = compiled.evaluate(context, counters={"payment_failed": {"7d": 4}}).to_dict()
    second = compiled.evaluate(context, counters={"payment_failed": {"7d": 4}}).to_dict()
    assert first == second
    assert first["evaluated_at"] is None


def test_evaluate_does_not_mutate_its_inputs() -> None:
    """The context, answers and counters passed in are left exactly as they were."""
    compiled = compile_ruleset(DESIGN.read_text())
    context = {"customer": {"tier": "diamond", "churn_score": "x"}, "answers": {"a": 1}}
    snapshot = repr(context)
    compiled.evaluate(context, trace=True).to_dict()
    assert repr(context) == snapshot


# Without trees, so that evaluate(context) takes the plain path.
_TABLES = document(
    eligibility=[{"id": "gold", "when": 'customer.tier == "gold"', "offer": "o"}],
    tables=[
        {
            "id": "one",
            "hit": "first",
            "inputs": ["interaction.amount"],
            "outputs": ["limit"],
            "rows": [["< 500", 50], ["-", 200]],
        },
        {
            "id": "two",
            "hit": "first",
            "inputs": ["customer.tier"],
            "outputs": ["a", "b"],
            "rows": [['"gold"', 1, 2], ["-", 3, 4]],
        },
        {
            "id": "all",
            "hit": "collect",
            "inputs": ["interaction.amount"],
            "outputs": ["k"],
            "rows": [["< 500", 1], ["-", 2]],
        },
    ],
)


def test_dicts_that_make_up_missing_keys_are_not_changed() -> None:
    """A defaultdict as the context or as one of its objects gains no keys: the context
    reads through ``get`` and the object reads as not a JSON object, with trees or without."""
    customer: defaultdict[str, object] = defaultdict(lambda: "gold", {"tier": "gold"})
    for compiled, context in itertools.product(
        (compile_ruleset(DESIGN.read_text()), compile_ruleset(_TABLES)),
        (defaultdict(dict, {"history": {}}), {"customer": customer}),
    ):
        before = {k: dict(v) if isinstance(v, dict) else v for k, v in context.items()}
        compiled.evaluate(context).to_dict()
        compiled.evaluate(context, trace=True).to_dict()
        assert {k: dict(v) if isinstance(v, dict) else v for k, v in context.items()} == before


@pytest.mark.parametrize("source", ["design", "tables"])
def test_what_a_caller_changes_stays_with_the_caller(source: str) -> None:
    """Changing the lists and dicts a decision hands out changes neither that decision nor
    later ones."""
    compiled = compile_ruleset(DESIGN.read_text() if source == "design" else _TABLES)
    context = {**_contexts(1)[0], "customer": {"tier": "gold", "churn_score": 0.5}}
    decision = compiled.evaluate(context)
    assert decision.eligible_rules and all(decision.tables.values())
    expected = compiled.evaluate(context).to_dict()
    decision.eligible_rules.append("made-up")
    for outputs in decision.tables.values():
        if outputs is not None:
            outputs["made-up"] = 1
    decision.tables["made-up"] = {}
    assert decision.to_dict() == expected
    assert compiled.evaluate(context).to_dict() == expected
    assert decision.eligible_rules == [e["rule"] for e in expected["eligible"]]
    assert decision.tables == expected["tables"]


def test_concurrent_evaluations_match_sequential_ones() -> None:
    """Evaluating from 8 threads at once gives the decisions one thread gives."""
    compiled = compile_ruleset(DESIGN.read_text())
    contexts = _contexts(400)
    expected = [compiled.evaluate(c, now="2026-11-22T10:00:00Z").to_dict() for c in contexts]
    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(
            pool.map(lambda c: compiled.evaluate(c, now="2026-11-22T10:00:00Z").to_dict(), contexts)
        )
    assert got == expected
