"""What an agent is shown of a decision, part by part, so that two decisions can be compared
the way an agent would notice they differ.

A shadow revision's differences and a replay's flip report both compare these parts:

    eligible    the eligible rules            params      each eligible rule's offer parameters
    escalation  the escalation rule           queue, priority   where it routes, how urgently
    alerts      the alert rules raised        severities  each raised alert's severity
    tables      every table's outputs         next_step   the tree's outcome, or the node it asks at
    texts       every text the agent reads: each offer's and the escalation's ``because``,
                each alert's message, the tree's question and its ``say``
    error       an evaluation that failed

The parts are taken from a decision's outputs in the form its ledger record keeps them: a
``{...}`` part of a message that reads a masked field holds the field's keyed hash, never its
value, so that comparing or storing texts never puts a masked value in clear.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PARTS = (
    "eligible",
    "params",
    "escalation",
    "queue",
    "priority",
    "alerts",
    "severities",
    "tables",
    "next_step",
    "texts",
    "error",
)
# Parts that map a rule, table or text to a value: their differences name only what differs.
_MAPPINGS = frozenset(("params", "severities", "tables", "texts"))


def shown(outputs: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a decision an agent sees, from its outputs (``Decision.to_dict()`` or what
    a ledger record keeps of it, where empty parts are left out)."""
    eligible = outputs.get("eligible") or ()
    escalation = outputs.get("escalation") or {}
    alerts = outputs.get("alerts") or ()
    step = outputs.get("next_step") or {}
    texts: dict[str, Any] = {}
    for offer in eligible:
        texts[f"because:eligibility:{offer['rule']}"] = offer.get("because")
    if escalation:
        texts[f"because:escalation:{escalation['rule']}"] = escalation.get("because")
    for alert in alerts:
        texts[f"message:{alert['rule']}"] = alert.get("message")
    if step.get("ask") is not None:
        texts["ask"] = step["ask"]
    if step.get("say") is not None:
        texts["say"] = step["say"]
    return {
        "eligible": [offer["rule"] for offer in eligible],
        "params": {offer["rule"]: offer.get("params") or {} for offer in eligible},
        "escalation": escalation.get("rule"),
        "queue": escalation.get("queue"),
        "priority": escalation.get("priority"),
        "alerts": [alert["rule"] for alert in alerts],
        "severities": {alert["rule"]: alert.get("severity") for alert in alerts},
        "tables": dict(outputs.get("tables") or {}),
        "next_step": step.get("outcome") or step.get("node"),
        "texts": texts,
        "error": outputs.get("error"),
    }


def differences(
    before: Mapping[str, Any], after: Mapping[str, Any], *, names: tuple[str, str]
) -> dict[str, dict[str, Any]]:
    """The parts in which two ``shown`` views differ: ``{part: {names[0]: ..., names[1]: ...}}``.

    For a part that maps rules, tables or texts to values, only the entries that differ are
    given (an entry one side lacks is None there), so that an offer whose parameters changed
    reads as that offer's parameters, not as every offer's."""
    found: dict[str, dict[str, Any]] = {}
    first, second = names
    for part in PARTS:
        a, b = before.get(part), after.get(part)
        if a == b:
            continue
        if part in _MAPPINGS and isinstance(a, Mapping) and isinstance(b, Mapping):
            keys = [k for k in {**a, **b} if a.get(k) != b.get(k)]
            found[part] = {first: {k: a.get(k) for k in keys}, second: {k: b.get(k) for k in keys}}
        else:
            found[part] = {first: a, second: b}
    return found
