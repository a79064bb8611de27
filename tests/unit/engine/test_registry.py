"""Revisions: deploy gate, one revision per distinct content, activation and rollback."""

from __future__ import annotations

import threading

import pytest

from adapters.memory import MemoryRulesetStore
from engine import (
    DeployRefused,
    Routing,
    RulesetError,
    RulesetRegistry,
    RulesetRetired,
    UnknownRuleset,
    compile_ruleset,
)

DOC = """\
ruleset: desk
context:
  customer.tier: string
eligibility:
  - id: gold
    when: customer.tier == "{tier}"
    offer: waive-fee
tests:
  - name: {tier} is eligible
    context: {{customer: {{tier: {tier}}}}}
    expect: {{eligible: [gold]}}
"""


def registry() -> RulesetRegistry:
    return RulesetRegistry(MemoryRulesetStore())


def test_deploy_stores_and_activates_a_new_revision() -> None:
    """A first deploy creates revision 1, with a sha256 digest, and activates it."""
    reg = registry()
    first = reg.deploy(DOC.format(tier="gold"))
    assert (first.name, first.revision, first.created, first.activated) == ("desk", 1, True, True)
    assert first.digest.startswith("sha256:") and len(first.digest) == 71
    assert reg.active("desk").revision == 1
    assert [t.passed for t in first.tests] == [True]


def test_same_content_returns_the_existing_revision() -> None:
    """Re-deploying the same content (comments and spacing aside) changes nothing."""
    reg = registry()
    reg.deploy(DOC.format(tier="gold"))
    again = reg.deploy("# a comment\n" + DOC.format(tier="gold").replace(": ", ":  "))
    assert (again.revision, again.created, again.activated) == (1, False, False)
    assert len(reg.revisions("desk")) == 1


def test_each_distinct_content_grows_the_revision_by_one() -> None:
    """Distinct documents get revisions 1, 2, 3 in order; each stays retrievable."""
    reg = registry()
    for n, tier in enumerate(["gold", "silver", "bronze"], start=1):
        assert reg.deploy(DOC.format(tier=tier)).revision == n
    assert [r.revision for r in reg.revisions("desk")] == [1, 2, 3]
    assert reg.get("desk", 2).evaluate({"customer": {"tier": "silver"}}).eligible_rules == ["gold"]


def test_rollback_reactivates_an_earlier_revision() -> None:
    """Activating an earlier revision makes it serve again; the later one is kept."""
    reg = registry()
    reg.deploy(DOC.format(tier="gold"))
    reg.deploy(DOC.format(tier="silver"))
    assert reg.active("desk").revision == 2
    reg.activate("desk", 1)
    active = reg.active("desk")
    assert active.revision == 1
    assert active.evaluate({"customer": {"tier": "gold"}}).to_dict()["revision"] == 1
    routing = reg.store.get_routing("desk")
    assert routing is not None and routing.active == 1


@pytest.mark.parametrize(
    ("text", "error"),
    [
        pytest.param(
            "ruleset: desk\ncontext: {customer.tier: string}\neligibility:\n"
            "  - {id: x, when: customer.tir == 1, offer: o}\n",
            RulesetError,
            id="does-not-compile",
        ),
        pytest.param(
            DOC.format(tier="gold").replace("expect: {eligible: [gold]}", "expect: {eligible: []}"),
            DeployRefused,
            id="test-fails",
        ),
    ],
)
def test_a_refused_deploy_leaves_the_active_revision_serving(
    text: str, error: type[Exception]
) -> None:
    """A document that fails to compile or fails its tests is not stored or activated."""
    reg = registry()
    reg.deploy(DOC.format(tier="gold"))
    with pytest.raises(error):
        reg.deploy(text)
    assert reg.active("desk").revision == 1
    assert len(reg.revisions("desk")) == 1


def test_failed_tests_are_named_in_the_refusal() -> None:
    """DeployRefused names each failing test and what differed."""
    reg = registry()
    with pytest.raises(DeployRefused) as caught:
        reg.deploy(DOC.format(tier="gold").replace("[gold]}", "[]}"))
    assert "test 'gold is eligible' failed: eligible: expected [], got ['gold']" in str(
        caught.value
    )


def test_unknown_names_and_revisions_are_refused() -> None:
    """Asking for a ruleset or revision that does not exist raises UnknownRuleset."""
    reg = registry()
    reg.deploy(DOC.format(tier="gold"))
    with pytest.raises(UnknownRuleset):
        reg.active("nope")
    with pytest.raises(UnknownRuleset):
        reg.activate("desk", 7)
    with pytest.raises(UnknownRuleset):
        reg.revisions("nope")


def test_concurrent_deploys_of_the_same_content_share_one_revision() -> None:
    """Racing deploys of one document all get the same revision number."""
    reg = registry()
    results: list[int] = []

    def deploy() -> None:
        results.append(reg.deploy(DOC.format(tier="gold")).revision)

    threads = [threading.Thread(target=deploy) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [1] * 8
    assert len(reg.revisions("desk")) == 1


def test_refresh_follows_the_stores_pointer() -> None:
    """A registry sharing a store with another sees the other's activation on refresh."""
    store = MemoryRulesetStore()
    ours, theirs = RulesetRegistry(store), RulesetRegistry(store)
    ours.deploy(DOC.format(tier="gold"))
    ours.deploy(DOC.format(tier="silver"))
    theirs.activate("desk", 1)
    assert ours.active("desk").revision == 2
    refreshed = ours.refresh("desk")
    assert refreshed is not None and refreshed.revision == 1


def three_revisions() -> RulesetRegistry:
    reg = registry()
    for tier in ("gold", "silver", "bronze"):
        reg.deploy(DOC.format(tier=tier), activate=tier == "gold")
    return reg


def test_a_canary_serves_its_percent_of_customers_stably() -> None:
    """About `percent` of the customers get the canary, the same ones on every call."""
    reg = three_revisions()
    routing = reg.rollout("desk", 2, 25)
    assert (routing.active, routing.canary, routing.percent) == (1, 2, 25)
    customers = [f"c-{k}" for k in range(4000)]
    served = {c: reg.route("desk", c)[0].revision for c in customers}
    share = sum(r == 2 for r in served.values()) / len(customers)
    assert 0.22 < share < 0.28
    assert all(reg.route("desk", c)[0].revision == served[c] for c in customers[:200])
    # Growing the canary keeps the customers it already had.
    reg.rollout("desk", 2, 50)
    assert all(reg.route("desk", c)[0].revision == 2 for c in customers if served[c] == 2)


def test_activating_ends_the_canary_and_full_rollout_activates() -> None:
    reg = three_revisions()
    reg.rollout("desk", 2, 30)
    reg.activate("desk", 3)
    assert reg.routing("desk").canary is None
    assert {reg.route("desk", f"c-{k}")[0].revision for k in range(300)} == {3}
    reg.rollout("desk", 2, 100)
    assert reg.routing("desk").active == 2 and reg.active("desk").revision == 2


def test_a_shadow_revision_rides_beside_the_served_one() -> None:
    reg = three_revisions()
    reg.shadow("desk", 3)
    served, shadow = reg.route("desk", "c-1")
    assert served.revision == 1 and shadow is not None and shadow.revision == 3
    reg.activate("desk", 2)  # the shadow stays while another revision is activated
    assert reg.route("desk", "c-1")[1] is not None
    reg.activate("desk", 3)  # activating the shadow revision itself ends the shadow
    assert reg.route("desk", "c-1")[1] is None
    reg.shadow("desk", 1)
    reg.shadow("desk", None)
    assert reg.routing("desk").shadow is None


def test_a_check_runs_everything_a_deploy_runs_and_stores_nothing() -> None:
    """``check`` answers the deploy's digest, tests and coverage, raises what a deploy would
    raise, and leaves the store as it was."""
    reg = registry()
    checked = reg.check(DOC.format(tier="gold"), filename="desk.yaml")
    assert (checked.name, [t.passed for t in checked.tests]) == ("desk", [True])
    assert reg.names() == []
    assert reg.deploy(DOC.format(tier="gold")).digest == checked.digest
    failing = DOC.format(tier="gold").replace("[gold]}", "[]}")
    with pytest.raises(DeployRefused) as refused:
        reg.check(failing, filename="desk.yaml")
    assert refused.value.errors[0].file == "desk.yaml"
    assert len(reg.revisions("desk")) == 1


def test_a_retired_ruleset_routes_nobody_until_a_revision_is_activated() -> None:
    """A retiring routing ends the canary and shadow; routing, canaries and shadows are
    refused with RulesetRetired; activating a revision serves again."""
    reg = three_revisions()
    reg.rollout("desk", 2, 30)
    reg.apply("desk", reg.planned_retirement("desk", "replaced"))
    assert reg.routing("desk") == Routing(1, version=3, retired="replaced")
    for call in (
        lambda: reg.route("desk", "c-1"),
        lambda: reg.check_serving("desk"),
        lambda: reg.planned_rollout("desk", 2, 10),
        lambda: reg.planned_shadow("desk", 2),
    ):
        with pytest.raises(RulesetRetired, match="ruleset 'desk' was retired"):
            call()
    reg.activate("desk", 2)
    assert reg.route("desk", "c-1")[0].revision == 2
    reg.check_serving("desk")


@pytest.mark.parametrize(
    ("call", "error"),
    [
        pytest.param(lambda r: r.rollout("desk", 9, 10), UnknownRuleset, id="unknown-revision"),
        pytest.param(lambda r: r.rollout("desk", 2, 101), ValueError, id="percent-too-high"),
        pytest.param(lambda r: r.rollout("desk", 2, -1), ValueError, id="percent-negative"),
        pytest.param(lambda r: r.shadow("nope", 1), UnknownRuleset, id="unknown-ruleset"),
        pytest.param(lambda r: r.route("nope", "c-1"), UnknownRuleset, id="route-unknown"),
    ],
)
def test_bad_routing_requests_are_refused(call: object, error: type[Exception]) -> None:
    reg = three_revisions()
    with pytest.raises(error):
        call(reg)  # type: ignore[operator]


def test_serving_lists_every_revision_served_without_reading_the_store() -> None:
    reg = three_revisions()
    assert [r.revision for r in reg.serving()] == [1]
    reg.rollout("desk", 2, 10)
    reg.shadow("desk", 3)
    assert sorted(r.revision for r in reg.serving()) == [1, 2, 3]

    class Away(MemoryRulesetStore):
        def names(self) -> list[str]:
            raise ConnectionError("the store is away")

    away = RulesetRegistry(Away())
    away.deploy(DOC.format(tier="gold"))
    assert [r.name for r in away.serving()] == ["desk"]  # served from memory all the same


def test_a_planned_change_changes_nothing_until_it_is_applied() -> None:
    """Planning an activation, a rollout or a shadow reads the routing and writes none; the
    plan carries the next version and the change it was planned for."""
    reg = registry()
    for tier in ("gold", "silver", "bronze"):
        reg.deploy(DOC.format(tier=tier), activate=tier == "gold")
    served = reg.routing("desk")
    assert served.version == 1
    plans = [
        reg.planned_activation("desk", 2, change="r-a"),
        reg.planned_rollout("desk", 2, 25, change="r-b"),
        reg.planned_shadow("desk", 3, change="r-c"),
    ]
    assert reg.routing("desk") == served and reg.served_routing("desk") == served
    assert [(p.version, p.change) for p in plans] == [(2, "r-a"), (2, "r-b"), (2, "r-c")]
    assert reg.apply("desk", plans[1])
    assert reg.routing("desk") == Routing(1, 2, 25, None, version=2, change="r-b")
    assert reg.route("desk", "any")[0].revision in (1, 2)


def test_a_change_planned_from_an_old_routing_is_not_applied() -> None:
    """Two changes planned from one routing (two instances at once): the first applied wins,
    the second is refused and the registry serves the first."""
    store = MemoryRulesetStore()
    ours, theirs = RulesetRegistry(store), RulesetRegistry(store)
    ours.deploy(DOC.format(tier="gold"))
    ours.deploy(DOC.format(tier="silver"), activate=False)
    mine = ours.planned_activation("desk", 2, change="mine")
    assert theirs.apply("desk", theirs.planned_shadow("desk", 2, change="theirs"))
    assert not ours.apply("desk", mine)
    assert ours.routing("desk").change == "theirs" and ours.active("desk").revision == 1


def test_a_stored_revision_the_analysis_would_refuse_still_serves() -> None:
    """A revision stored before overlapping rows of a unique table were refused is compiled
    again, after a restart, with the overlap as a warning: it keeps serving."""
    text = (
        DOC.format(tier="gold")
        + """\
tables:
  - id: t
    hit: unique
    inputs: [customer.tier]
    outputs: [o]
    rows: [["-", 1], ['"gold"', 2]]
"""
    )
    with pytest.raises(RulesetError, match="rows 1 and 2 overlap"):
        registry().deploy(text)
    store = MemoryRulesetStore()
    digest = compile_ruleset(text, strict=False).digest
    stored, _ = store.put_revision("desk", digest, text)
    restarted = RulesetRegistry(store)
    served = restarted.get("desk", stored.revision)
    assert [w.message for w in served.warnings] == [
        "table 't' rows 1 and 2 overlap: customer.tier = \"gold\" matches both"
    ]
    decision = served.evaluate({"customer": {"tier": "gold"}}).to_dict()
    assert decision["errors"] == [
        {"table": "t", "error": "hit policy unique, but rows 1, 2 all match"}
    ]
