"""evaluate is pure: same inputs, same decision; no clock; safe from many threads."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from engine import compile_ruleset

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
