"""The starter library in rulesets/: what `frontline serve` loads and newcomers read first."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import compile_ruleset

RULESETS = sorted((Path(__file__).resolve().parents[2] / "rulesets").glob("*.yaml"))


def test_the_library_has_the_three_desks() -> None:
    """The retention, billing-dispute and service-outage desks are all there."""
    assert {p.stem for p in RULESETS} >= {"retention-desk", "billing-disputes", "service-outage"}


@pytest.mark.parametrize("path", RULESETS, ids=lambda p: p.stem)
def test_each_document_compiles_and_passes_at_least_ten_own_tests(path: Path) -> None:
    """Each starter document compiles without a warning of the analysis (no row that can never
    win, no rule that can never hold), carries ten or more tests, and every one passes."""
    compiled = compile_ruleset(path.read_text(), filename=str(path))
    assert [str(w) for w in compiled.warnings] == []  # examples: the analysis finds nothing
    results = compiled.run_tests()
    assert len(results) >= 10
    failures = [f"{r.name}: {r.failures}" for r in results if not r.passed]
    assert failures == []
