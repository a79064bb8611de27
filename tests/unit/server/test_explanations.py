"""The explanation pack built from a ledger record and a registry (server/service/explanations.py):
what it claims when the revision or the recorded inputs cannot back a counterfactual."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from adapters.memory import MemoryRulesetStore
from audit.masking import Masker
from audit.record import LedgerRecord
from audit.recording import decision_record
from engine import RulesetRegistry
from server.service.explanations import build_pack

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
DOCUMENT = """\
ruleset: pack
context:
  customer.tier: {type: string, enum: [bronze, silver, gold]}
  customer.email: {type: string, classification: pii}
  customer.tenure_months: integer
eligibility:
  - id: loyal
    when: customer.tenure_months >= 24
    offer: loyalty
    because: Two years with us
    reason_code: LOYAL
  - id: known-address
    when: customer.email == "vip@example.com"
    offer: vip-line
escalation:
  - id: gold
    when: customer.tier == "gold"
    queue: gold-desk
    priority: 1
"""
MASKER = Masker(b"a-masking-key-of-some-length")


def recorded(context: dict[str, Any]) -> tuple[RulesetRegistry, LedgerRecord]:
    registry = RulesetRegistry(MemoryRulesetStore())
    registry.deploy(DOCUMENT)
    compiled = registry.active("pack")
    decision = compiled.evaluate(context, now=NOW)
    record = decision_record(
        decision,
        record_id="d-1",
        context=context,
        customer_id="c-1",
        masker=MASKER,
        sources={"customer": "crm"},
    )
    return registry, record


def test_a_pack_explains_and_checks_its_counterfactuals() -> None:
    registry, record = recorded({"customer": {"tier": "gold", "tenure_months": 30}})
    pack = build_pack(record, [], registry, MASKER)
    assert [(r.code, r.text) for r in pack.reasons] == [
        ("escalation/gold", "Escalated to gold-desk"),
        ("LOYAL", "Two years with us"),
    ]
    assert [r.when for r in pack.rules] == [
        'customer.tier == "gold"',
        "customer.tenure_months >= 24",
    ]
    assert [r.line for r in pack.rules] == [16, 7]
    texts = [c.text for c in pack.counterfactuals]
    assert "customer.tenure_months < 24 would have made loyalty not eligible" in texts
    assert 'customer.tier = "bronze" would not have escalated to gold-desk' in texts
    # The vip line reads the e-mail, which is pii: never changed, and the pack says so.
    assert [n.text for n in pack.not_explored] == ["not explored: customer.email (masked)"]
    assert [u.offer for u in pack.unflipped] == ["vip-line"]
    assert pack.exploration.replay_matches


def test_no_counterfactual_is_claimed_when_the_record_does_not_replay() -> None:
    """The e-mail decided the vip line; the record holds its mask, so evaluating the record
    again does not give the vip line: the pack says so and claims nothing."""
    registry, record = recorded(
        {"customer": {"tier": "silver", "tenure_months": 3, "email": "vip@example.com"}}
    )
    assert [e["rule"] for e in record.outputs["eligible"]] == ["known-address"]
    pack = build_pack(record, [], registry, MASKER)
    assert pack.counterfactuals == [] and pack.unflipped == []
    assert pack.unknown_rules == []  # nor which rules the lost value left unknown
    assert pack.exploration.replay_matches is False
    assert "does not give the recorded outcome" in (pack.exploration.note or "")
    assert [r.code for r in pack.reasons] == ["eligibility/known-address"]
    assert pack.data[0].masked and "vip@example.com" not in str(pack.data)


def test_without_the_stored_revision_the_pack_still_gives_the_record() -> None:
    _, record = recorded({"customer": {"tier": "gold", "tenure_months": 30}})
    empty = RulesetRegistry(MemoryRulesetStore())
    pack = build_pack(record, [], empty, MASKER)
    assert pack.revision is not None and pack.revision.stored is False
    assert pack.rules == [] and pack.counterfactuals == [] and pack.unknown_rules == []
    assert "no text of pack revision 1" in (pack.exploration.note or "")
    assert [r.code for r in pack.reasons] == ["escalation/gold", "eligibility/loyal"]


def test_a_rule_that_reads_a_missing_field_is_named_unknown_with_the_field() -> None:
    """Without a tenure the loyalty rule can neither fire nor be ruled out: the pack names it
    and the field; the escalation that was decided (false for a silver customer) is not."""
    registry, record = recorded({"customer": {"tier": "silver"}})
    pack = build_pack(record, [], registry, MASKER)
    assert [(r.section, r.rule, r.missing, r.offer) for r in pack.unknown_rules] == [
        ("eligibility", "loyal", ["customer.tenure_months"], "loyalty"),
        ("eligibility", "known-address", ["customer.email"], "vip-line"),
    ]
    assert pack.unknown_rules[0].when == "customer.tenure_months >= 24"
    assert pack.unknown_rules[0].line == 7
