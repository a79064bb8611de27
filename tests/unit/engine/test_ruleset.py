"""A compiled ruleset is immutable; the registry numbers it by building a new one."""

from __future__ import annotations

import dataclasses

import pytest

from engine import compile_ruleset

DOCUMENT = """
ruleset: frozen-desk
context:
  customer.tier: string
eligibility:
  - id: gold
    when: customer.tier == "gold"
    offer: upgrade
"""


def test_a_compiled_ruleset_refuses_changes() -> None:
    """Assigning to a compiled ruleset raises; nothing can change what a revision serves."""
    compiled = compile_ruleset(DOCUMENT)
    with pytest.raises(dataclasses.FrozenInstanceError):
        compiled.revision = 3  # type: ignore[misc]


@pytest.mark.parametrize("context", [{"customer": {"tier": "gold"}}, None], ids=["plain", "empty"])
def test_a_numbered_ruleset_answers_with_its_revision(context: dict[str, object] | None) -> None:
    """``at_revision`` gives a new ruleset whose decisions (plain entry point included) carry
    the revision; the unnumbered one is unchanged."""
    compiled = compile_ruleset(DOCUMENT)
    numbered = compiled.at_revision(4)
    decision = numbered.evaluate(context)
    assert decision.ruleset is numbered
    assert decision.to_dict()["revision"] == 4
    assert compiled.evaluate(context).to_dict()["revision"] is None
    assert numbered.evaluate({"customer": {"tier": "gold"}}).eligible_rules == ["gold"]
