"""Small builders shared by the engine's unit tests."""

from __future__ import annotations

from typing import Any

from engine import CompiledRuleset, compile_ruleset

CONTEXT: dict[str, Any] = {
    "customer.tier": {"type": "string", "enum": ["bronze", "silver", "gold", "platinum"]},
    "customer.tenure_months": "integer",
    "customer.churn_score": {"type": "number", "max_age": "24h"},
    "customer.email": {"type": "string", "classification": "pii"},
    "customer.vip": "boolean",
    "customer.tags": {"type": "list", "items": "string"},
    "customer.scores": {"type": "list", "items": "number"},
    "customer.open_cases": {"type": "list", "items": {"status": "string", "priority": "integer"}},
    "customer.last_payment_at": "datetime",
    "customer.address.city": "string",
    "interaction.amount": "number",
    "interaction.channel": "string",
    "history.contacts_7d": "integer",
    "answers.charge_age_days": "integer",
}


def document(**sections: Any) -> dict[str, Any]:
    """A document named ``t`` with the shared context and the given sections."""
    doc: dict[str, Any] = {"ruleset": "t", "context": dict(CONTEXT)}
    doc.update(sections)
    return doc


def when(condition: str | bool) -> CompiledRuleset:
    """A document with one eligibility rule ``r`` guarded by ``condition``."""
    return compile_ruleset(document(eligibility=[{"id": "r", "when": condition, "offer": "o"}]))


def fires(condition: str, context: dict[str, Any], **kwargs: Any) -> bool:
    return when(condition).evaluate(context, **kwargs).eligible_rules == ["r"]
