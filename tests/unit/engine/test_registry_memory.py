"""Compiled revisions are not kept for ever: beyond those being served, at most ``keep_idle``
stay compiled, and one asked for again is compiled again from its stored text, unchanged."""

from __future__ import annotations

from adapters.memory import MemoryRulesetStore
from engine import RulesetRegistry
from tests.support.documents import TINY


def revision(k: int) -> str:
    return TINY.replace("offer: credit", f"offer: credit-{k}")


def test_idle_revisions_are_let_go_and_compiled_again_when_asked() -> None:
    registry = RulesetRegistry(MemoryRulesetStore(), keep_idle=2)
    for k in range(10):
        registry.deploy(revision(k))
    assert registry.active_revision("tiny") == 10
    assert registry.compiled <= 3  # the active one and two idle ones
    first = registry.get("tiny", 1)  # let go long ago: compiled again from the store
    assert first.revision == 1 and first.digest == registry.store.get_revision("tiny", 1).digest
    offers = first.evaluate({"customer": {"tier": "gold"}}).to_dict()["eligible"]
    assert [o["offer"] for o in offers] == ["credit-0"]
    assert registry.get("tiny", 1) is first  # and kept while it is used
    assert registry.get("tiny", 10) is registry.active("tiny")  # the served one, never copied
    assert registry.compiled <= 4  # and the one just asked for, on top
