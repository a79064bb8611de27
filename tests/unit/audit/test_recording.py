"""Decision records: what they keep of a decision, and classified values masked everywhere."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from audit.masking import PREFIX, Masker, is_masked
from audit.record import Actor, decode, encode
from audit.recording import decision_record, mask_shown
from engine import compile_ruleset

KEY = b"k" * 32
NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)

DOCUMENT: dict[str, Any] = {
    "ruleset": "masking",
    "context": {
        "customer.email": {"type": "string", "classification": "pii"},
        "customer.tier": {"type": "string", "classification": "public"},
        "customer.tenure_months": "integer",
        "customer.churn_score": {"type": "number", "max_age": "24h"},
        "answers.reason": "string",
    },
    "eligibility": [
        {
            "id": "gold-offer",
            "when": 'customer.tier == "gold" and customer.tenure_months > 12',
            "offer": "loyalty",
            "because": "Long-standing gold customer",
        }
    ],
    "escalation": [
        {"id": "churn", "when": "customer.churn_score > 0.8", "queue": "retention", "priority": 1}
    ],
    "alerts": [
        {
            "id": "work-email",
            "when": 'endswith(customer.email, "@example.com")',
            "severity": "info",
            "message": "Customer writes from {customer.email}",
        },
        {
            "id": "tier",
            "when": "true",
            "severity": "info",
            "message": "Tier {customer.tier}",
        },
    ],
    "trees": [
        {
            "id": "why",
            "start": "ask",
            "nodes": {
                "ask": {
                    "ask": "Why are you leaving?",
                    "answer": "answers.reason",
                    "next": [{"when": 'answers.reason == "price"', "goto": "done"}],
                },
                "done": {"outcome": "offer", "say": "Mail {customer.email} the offer"},
            },
        }
    ],
}
CONTEXT = {
    "customer": {
        "email": "ann@example.com",
        "tier": "gold",
        "tenure_months": 20,
        "churn_score": 0.9,
    }
}


def record(masker: Masker | None, **kwargs: Any) -> Any:
    compiled = compile_ruleset(DOCUMENT)
    answers = kwargs.pop("answers", {"reason": "price"})
    context = kwargs.pop("context", CONTEXT)
    decision = compiled.evaluate(
        context,
        answers=answers,
        now=NOW,
        trace=kwargs.pop("trace", False),
        as_of={"customer": "2026-11-22T09:59:00Z", "customer.churn_score": "2026-11-20T10:00:00Z"},
    )
    return decision_record(
        decision,
        record_id="d-1",
        context=context,
        inputs={"answers": answers, **kwargs.pop("inputs", {})},
        sources={"customer": "crm", "customer.churn_score": "churn-model"},
        as_of={"customer": "2026-11-22T09:59:00Z", "customer.churn_score": "2026-11-20T10:00:00Z"},
        actor=Actor(principal="agent-7", role="agent"),
        customer_id="c-1",
        agent_id="agent-7",
        latency_us=85,
        masker=masker,
    )


def test_the_record_keeps_what_was_read_with_source_and_age_and_the_outputs() -> None:
    """Each field read is kept with its value, source and age; outputs and fired rules too."""
    r = record(None)
    assert set(r.context) == {
        "customer.email",
        "customer.tier",
        "customer.tenure_months",
        "customer.churn_score",
        "answers.reason",
    }
    assert r.context["customer.tier"].value == "gold"
    assert r.context["customer.tier"].source == "crm"
    assert r.context["customer.tier"].age_ms == 60_000
    assert r.context["customer.churn_score"].source == "churn-model"
    assert r.context["customer.churn_score"].age_ms == 2 * 86_400_000
    assert r.context["answers.reason"].value == "price"
    assert r.stale_fields == ["customer.churn_score"]
    assert r.ruleset is not None and r.ruleset.name == "masking"
    assert r.evaluated_at == "2026-11-22T10:00:00.000Z"
    assert [(f.section, f.rule, f.because) for f in r.fired] == [
        ("eligibility", "gold-offer", "Long-standing gold customer"),
        ("escalation", "churn", None),
        ("alerts", "work-email", None),
        ("alerts", "tier", None),
    ]
    assert r.outputs["alerts"][0]["message"] == "Customer writes from ann@example.com"
    assert r.outputs["next_step"]["say"] == "Mail ann@example.com the offer"
    assert "ruleset" not in r.outputs  # held once, in record.ruleset
    assert decode(encode(r)) == r


def test_context_values_are_stored_as_value_source_and_age() -> None:
    """In the stored bytes a context value is the array [value, source, age_ms]."""
    body = encode(record(None))
    assert b'"customer.tier":["gold","crm",60000]' in body
    assert b'"customer.churn_score":[0.9,"churn-model",172800000]' in body
    assert b'"value"' not in body and b'"age_ms"' not in body


def test_a_field_read_but_not_had_is_named_once_in_missing_fields() -> None:
    """A field the rules read and the context lacks is only in missing_fields, not in context."""
    customer = {k: v for k, v in CONTEXT["customer"].items() if k != "churn_score"}
    r = record(None, context={"customer": customer})
    assert "customer.churn_score" not in r.context
    assert r.missing_fields == ["customer.churn_score"]
    assert "missing_fields" not in r.outputs and "stale_fields" not in r.outputs
    assert encode(r).count(b"customer.churn_score") == 1


def test_outputs_keep_only_what_carries_something() -> None:
    """Empty outputs and those the record holds in its own fields are not stored in outputs."""
    customer = {**CONTEXT["customer"], "churn_score": 0.1, "tier": "bronze"}
    r = record(None, context={"customer": customer})
    assert "escalation" not in r.outputs and "eligible" not in r.outputs
    assert all(r.outputs.values())
    for held in ("ruleset", "revision", "digest", "evaluated_at", "missing_fields"):
        assert held not in r.outputs
    assert [f.rule for f in r.fired] == ["work-email", "tier"]
    stored = json.loads(encode(r))
    assert all(v not in (None, [], {}) for v in stored.values())
    assert all(v not in (None, [], {}) for v in stored["outputs"].values())


def test_pii_is_masked_wherever_it_would_appear() -> None:
    """PII is masked in context, inputs, the parts of alert messages and tree prompts that
    render it, and trace reads."""
    masker = Masker(KEY)
    r = record(
        masker,
        trace=True,
        inputs={"context": {"customer": {"email": "ann@example.com", "tier": "gold"}}},
    )
    email = r.context["customer.email"].value
    assert email.startswith(PREFIX) and email == masker.mask("ann@example.com")
    assert r.context["customer.tier"].value == "gold"  # public stays in clear
    assert r.inputs["context"]["customer"]["email"] == email
    assert r.inputs["context"]["customer"]["tier"] == "gold"
    alerts = {a["rule"]: a["message"] for a in r.outputs["alerts"]}
    assert alerts["work-email"] == f"Customer writes from {email}"
    assert alerts["tier"] == "Tier gold"
    assert r.outputs["next_step"]["say"] == f"Mail {email} the offer"
    traced = {t["rule"]: t["reads"] for t in r.outputs["trace"]["rules"]}
    assert traced["work-email"]["customer.email"] == email
    assert b"ann@example.com" not in encode(r)


def test_equal_values_mask_equally_and_other_keys_differ() -> None:
    """A mask is a keyed hash: equal values mask equally, other values or keys differ."""
    a, b = Masker(KEY), Masker(b"z" * 32)
    assert a.mask("ann@example.com") == a.mask("ann@example.com")
    assert a.mask("ann@example.com") != a.mask("bob@example.com")
    assert a.mask("ann@example.com") != b.mask("ann@example.com")
    assert a.mask(None) is None
    # Masks are remembered per value and type: 1, 1.0 and true are different JSON values.
    assert len({a.mask(1), a.mask(1.0), a.mask(True)}) == 3
    assert a.mask(1) == a.mask(1) and a.mask(True) == a.mask(True)
    # A value that looks like a mask is masked like any other, so a customer's field holding
    # "hmac-sha256:..." is not stored as it came.
    looks_masked = a.mask("x")
    assert looks_masked is not None
    assert a.mask(looks_masked) != looks_masked


def test_a_classification_can_be_kept_in_clear() -> None:
    """A masker told to keep a classification clear leaves its values as they were."""
    r = record(Masker(KEY, clear={"pii"}))
    assert r.context["customer.email"].value == "ann@example.com"


def test_invalid_values_of_masked_fields_are_masked_in_their_description() -> None:
    """A wrong-typed value of a masked field is masked in the invalid-field description."""
    masker = Masker(KEY)
    compiled = compile_ruleset(DOCUMENT)
    context = {"customer": {"email": ["ann@example.com"], "tier": "gold"}}
    decision = compiled.evaluate(context, now=NOW)
    context2 = {"customer": {"email": 42, "tier": "gold"}}
    decision2 = compiled.evaluate(context2, now=NOW)
    for d, ctx in ((decision, context), (decision2, context2)):
        r = decision_record(d, record_id="d", context=ctx, masker=masker)
        (invalid,) = r.outputs["invalid_fields"]
        assert invalid["field"] == "customer.email" and is_masked(invalid["got"])


@pytest.mark.parametrize(
    ("key", "clear", "message"),
    [
        (b"short", (), "at least 16 bytes"),
        (KEY, ("secret",), "unknown classification 'secret'"),
    ],
)
def test_bad_masking_settings_are_refused(key: bytes, clear: tuple[str, ...], message: str) -> None:
    """A short key or an unknown classification is refused with a sentence naming it."""
    with pytest.raises(ValueError, match=message):
        Masker(key, clear=clear)


def test_ruleset_changes_alerts_and_acks_share_the_decisions_chain(tmp_path: Any) -> None:
    """Every kind of record goes through one writer into one chain, and is found by kind."""
    from audit.query import LedgerQuery, LedgerReader
    from audit.record import RulesetRef
    from audit.recording import ack_record, alert_record, ruleset_record
    from audit.segments import SegmentLog
    from audit.verify import verify
    from audit.writer import LedgerWriter

    store = SegmentLog(tmp_path, "local")
    writer = LedgerWriter(store)
    author = Actor(principal="ann", role="author")
    agent = Actor(principal="agent-7", role="agent")
    ref = RulesetRef(name="masking", revision=2, digest="sha256:00")
    writer.append_blocking(
        ruleset_record(
            record_id="r-1",
            action="deploy",
            name="masking",
            revision=2,
            digest="sha256:00",
            actor=author,
            details={"previous": 1, "tests": {"passed": 3, "failed": 0}},
        )
    )
    writer.append_blocking(record(Masker(KEY)))
    writer.append_blocking(
        alert_record(
            record_id="al-1",
            alert_id="alert-1",
            rule="work-email",
            severity="info",
            message="masked elsewhere",
            ruleset=ref,
            customer_id="c-1",
            agent_id="agent-7",
            interaction_id="i-1",
            trigger="event",
            decision_id="d-1",
        )
    )
    writer.append_blocking(
        ack_record(
            record_id="ack-1",
            alert_id="alert-1",
            outcome="acted",
            actor=agent,
            agent_id="agent-7",
        )
    )
    writer.close()
    assert verify(store).ok
    reader = LedgerReader(tmp_path)
    try:
        kinds = [r.kind for r in reader.iterate(LedgerQuery())]
        alerts = [r.id for r in reader.iterate(LedgerQuery(outcome="alert:work-email"))]
        changes = list(reader.iterate(LedgerQuery(kind="ruleset")))
    finally:
        reader.close()
    store.close()
    assert kinds == ["ack", "alert", "decision", "ruleset"]
    assert alerts == ["al-1", "d-1"]  # the delivery and the decision that raised it
    assert changes[0].actor == author and changes[0].data["action"] == "deploy"


def test_unknown_actions_and_ack_outcomes_are_refused() -> None:
    """A ruleset action or ack outcome outside the known ones is refused."""
    from audit.recording import ack_record, ruleset_record

    with pytest.raises(ValueError, match="unknown ruleset action 'delete'"):
        ruleset_record(record_id="x", action="delete", name="n", revision=1, digest="d", actor=None)
    with pytest.raises(ValueError, match="unknown outcome 'ignored'"):
        ack_record(record_id="x", alert_id="a", outcome="ignored", actor=None, agent_id="a")


@pytest.mark.parametrize(
    ("message", "hide", "shown"),
    [
        pytest.param("Write to {customer.email}", {"customer.email"}, "Write to M", id="a-field"),
        pytest.param(
            "Write to {upper(customer.email)}", {"customer.email"}, "Write to M", id="computed"
        ),
        pytest.param(
            "{customer.tier}: {customer.email}", {"customer.email"}, "gold: M", id="mixed"
        ),
        pytest.param("{customer.tier}: {customer.email}", None, "M: M", id="hide-every-part"),
        pytest.param("Case {customer.case_id}", None, "Case ?", id="unknown-prints-?"),
        pytest.param("Tier {customer.tier}", {"customer.email"}, "Tier gold", id="nothing-to-hide"),
    ],
)
def test_a_template_shows_each_part_that_reads_a_hidden_field_as_its_mask(
    message: str, hide: set[str] | None, shown: str
) -> None:
    """Only the {...} parts reading a hidden field (every part, with None) are masked, whatever
    they compute; the ruleset's own text stays; an unknown value prints ? unmasked."""
    document = {
        "ruleset": "parts",
        "context": {
            "customer.email": {"type": "string", "classification": "pii"},
            "customer.tier": "string",
            "customer.case_id": "string",
        },
        "alerts": [{"id": "a", "when": "true", "severity": "info", "message": message}],
    }
    decision = compile_ruleset(document).evaluate(
        {"customer": {"email": "ann@example.com", "tier": "gold"}}
    )
    outputs = mask_shown(decision, decision.to_dict(), hide, lambda value: "M")
    assert outputs["alerts"][0]["message"] == shown
