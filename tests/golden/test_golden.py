"""Golden documents: expected decisions for valid documents, expected errors for failing ones.

Set FRONTLINE_UPDATE_GOLDEN=1 to rewrite the expected files from the current engine; review
the diff before committing it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine import RulesetError, compile_ruleset

HERE = Path(__file__).parent
UPDATE = os.environ.get("FRONTLINE_UPDATE_GOLDEN") == "1"
DOCUMENTS = sorted((HERE / "decisions").glob("*.yaml"))
DOCUMENTS = [d for d in DOCUMENTS if not d.name.endswith(".cases.yaml")]
FAILING = sorted((HERE / "errors").glob("*.yaml"))


def _decisions(document: Path) -> list[dict[str, Any]]:
    compiled = compile_ruleset(document.read_text(), filename=document.name)
    cases = yaml.safe_load(document.with_suffix(".cases.yaml").read_text())
    out = []
    for case in cases:
        decision = compiled.evaluate(
            case.get("context", {}),
            answers=case.get("answers"),
            now=case.get("now"),
            counters=case.get("counters"),
            trace=case.get("trace", False),
            as_of=case.get("as_of"),
        )
        out.append({"name": case["name"], "decision": decision.to_dict()})
    return out


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.stem)
def test_golden_decisions(document: Path) -> None:
    """Each case of a golden document evaluates to exactly the recorded decision."""
    expected_file = document.with_suffix(".expected.json")
    got = _decisions(document)
    if UPDATE:
        expected_file.write_text(json.dumps(got, indent=2, ensure_ascii=False) + "\n")
    assert got == json.loads(expected_file.read_text())


@pytest.mark.parametrize("document", FAILING, ids=lambda p: p.stem)
def test_golden_errors(document: Path) -> None:
    """Each failing document is refused with exactly the recorded, located problems."""
    expected_file = document.with_suffix(".errors")
    with pytest.raises(RulesetError) as caught:
        compile_ruleset(document.read_text(), filename=f"errors/{document.name}")
    got = "".join(f"{problem}\n" for problem in caught.value.errors)
    if UPDATE:
        expected_file.write_text(got)
    assert got == expected_file.read_text()
