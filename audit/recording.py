"""Turning an engine ``Decision`` into its ledger record, with classified values masked.

The record keeps what an auditor needs to explain and replay the decision:

- ``context``: every declared field the evaluation read and had, as it was in the context it
  was given (before type checks, so a wrong-typed value is kept as sent), with the source that
  supplied it and its age in milliseconds at ``now``; a field it read and did not have is
  named once, in ``missing_fields``;
- ``inputs``: what the request itself carried (context overrides, answers, tree, counters,
  trigger), so a replay evaluates exactly what the engine saw;
- ``outputs``: the decision as ``Decision.to_dict()`` renders it, without what is empty and
  without what the record holds in fields of its own (the ruleset, missing and stale fields).

With a ``Masker``, values of masked classifications are replaced by their keyed hash wherever
they would appear: context values, request inputs, invalid-field descriptions, trace reads,
and the ``{...}`` parts of alert messages and tree prompts that render such a field
(``mask_shown``, which also masks what agents are shown).
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from datetime import datetime
from typing import Any

from audit.masking import Masker
from audit.record import Actor, ContextValue, Kind, LedgerRecord, RulesetRef
from engine import Decision
from engine.parts import RulesetParts, json_value
from engine.times import format_time, parse_time

# Held by the record's own fields, not repeated in its outputs.
_NOT_OUTPUTS = frozenset(
    ("ruleset", "revision", "digest", "evaluated_at", "missing_fields", "stale_fields")
)


def lookup(context: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted ``path`` of nested mappings; None where any step is absent."""
    return _dig(context, path_steps(path))


def _dig(value: Any, steps: tuple[str, ...]) -> Any:
    for part in steps:
        if value.__class__ is not dict and not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


# A ruleset reads the same few dozen paths in every decision: each is split once.
_STEPS: dict[str, tuple[str, ...]] = {}
_PREFIXES: dict[str, tuple[str, ...]] = {}


def path_steps(path: str) -> tuple[str, ...]:
    """The names of a dotted path, split once per distinct path."""
    found = _STEPS.get(path)
    if found is None:
        if len(_STEPS) > 100_000:
            _STEPS.clear()
        found = _STEPS[path] = tuple(path.split("."))
    return found


def _prefixes(path: str) -> tuple[str, ...]:
    """``path`` and each of its prefixes, longest first: a.b.c, a.b, a."""
    found = _PREFIXES.get(path)
    if found is None:
        if len(_PREFIXES) > 100_000:
            _PREFIXES.clear()
        steps = path_steps(path)
        found = _PREFIXES[path] = tuple(".".join(steps[:n]) for n in range(len(steps), 0, -1))
    return found


def decision_record(  # noqa: PLR0912 -- a branch per optional part of the record
    decision: Decision,
    *,
    record_id: str,
    context: Mapping[str, Any],
    inputs: Mapping[str, Any] | None = None,
    sources: Mapping[str, str] | None = None,
    as_of: Mapping[str, Any] | None = None,
    actor: Actor | None = None,
    customer_id: str | None = None,
    agent_id: str | None = None,
    interaction_id: str | None = None,
    latency_us: int | None = None,
    masker: Masker | None = None,
    kind: Kind = "decision",
) -> LedgerRecord:
    """The ledger record of one evaluation.

    ``context`` is the context the decision was evaluated on (with any ``answers`` inside it
    or in ``inputs["answers"]``); ``sources`` and ``as_of`` map field paths or their prefixes
    (``customer``, ``customer.profile``) to where the values came from and when they were
    current. An evaluation for another trigger than ``decision`` records its trigger in
    ``inputs["trigger"]``, so that a replay asks the same question.
    """
    rs = decision.ruleset
    masked = masked_paths(rs, masker)
    inputs = dict(inputs or {})
    if decision.trigger != "decision":
        inputs["trigger"] = decision.trigger
    answers = inputs.get("answers") or context.get("answers") or {}
    now = decision.now
    ages: dict[Any, int | None] = {}  # as_of value → age: a context has few distinct ones
    values: dict[str, ContextValue] = {}
    known_steps = _STEPS
    for path in decision.read_paths:
        steps = known_steps.get(path) or path_steps(path)
        if steps[0] == "answers":
            value, walk = answers, steps[1:]
        else:
            value, walk = context, steps
        for part in walk:
            if value.__class__ is not dict and not isinstance(value, Mapping):
                value = None
                break
            value = value.get(part)
        if value is None:
            continue  # not had: named once, in missing_fields
        if value.__class__ is datetime:
            value = json_value(value)
        if masker is not None and path in masked:
            value = masker.mask(value)
        source = None
        if sources:
            source = sources.get(path) or _longest_prefix(sources, path)
        age = None
        if as_of and now is not None:
            when = as_of.get(path) or _longest_prefix(as_of, path)
            if when is not None:
                age = ages.get(when, -1)
                if age == -1:
                    age = ages[when] = _age_ms(when, now)
        values[path] = ContextValue(value, source, age)
    rendered = decision.to_dict()
    # Outputs that carry nothing are not stored; missing and stale fields are stored once.
    outputs = {k: v for k, v in rendered.items() if v and k not in _NOT_OUTPUTS}
    if masker is not None and masked:
        outputs = mask_shown(decision, outputs, masked, masker.mask)
    return LedgerRecord(
        id=record_id,
        kind=kind,
        actor=actor,
        customer_id=customer_id,
        agent_id=agent_id,
        interaction_id=interaction_id,
        ruleset=ruleset_ref(rs),
        evaluated_at=format_time(now) if now is not None else None,
        context=values,
        inputs=_mask_inputs(inputs, masked, masker),
        outputs=outputs,
        missing_fields=list(rendered["missing_fields"]),
        stale_fields=list(rendered["stale_fields"]),
        latency_us=latency_us,
    )


_MASKED: weakref.WeakKeyDictionary[RulesetParts, dict[frozenset[str], frozenset[str]]] = (
    weakref.WeakKeyDictionary()
)


def ruleset_ref(ruleset: RulesetParts) -> RulesetRef:
    """How a record names the revision that made it."""
    return RulesetRef(name=ruleset.name, revision=ruleset.revision, digest=ruleset.digest)


def masked_paths(ruleset: RulesetParts, masker: Masker | None) -> frozenset[str]:
    """The fields of ``ruleset`` whose classification ``masker`` masks, worked out once per
    compiled revision and set of masked classifications."""
    if masker is None:
        return frozenset()
    known = _MASKED.get(ruleset)
    if known is None:
        known = _MASKED[ruleset] = {}
    paths = known.get(masker.masked)
    if paths is None:
        paths = known[masker.masked] = frozenset(
            p for p, meta in ruleset.fields.items() if masker.masks(meta.classification)
        )
    return paths


def _longest_prefix(table: Mapping[str, Any], path: str) -> Any:
    for probe in _prefixes(path):
        if probe in table:
            return table[probe]
    return None


def _age_ms(when: Any, now: datetime) -> int | None:
    """Milliseconds from ``when`` (a datetime or RFC 3339 text) to ``now``."""
    moment = parse_time(when)
    if moment is None:
        return None
    return int((now - moment).total_seconds() * 1000)


def mask_shown(
    decision: Decision,
    shown: Mapping[str, Any],
    hide: AbstractSet[str] | None,
    mask: Callable[[Any], str | None],
) -> dict[str, Any]:
    """``shown`` (the decision's JSON shape, or the part of it a record keeps) with what it
    shows of the fields in ``hide`` (of every field, when None) masked by ``mask``: the
    ``{...}`` parts of alert messages and tree prompts that read one, the description of an
    invalid value, and trace reads. A new dict; what has nothing to mask is shared."""
    rs = decision.ruleset
    out = dict(shown)

    def hides(reads: AbstractSet[str]) -> bool:
        return hide is None or not hide.isdisjoint(reads)

    def hides_field(path: str) -> bool:
        return hide is None or path in hide

    alerts = shown.get("alerts")
    if alerts:
        templates = rs.alert_templates
        rendered = []
        for alert in alerts:
            template = templates.get(alert["rule"])
            if template is not None and hides(template.reads):
                rendered.append({**alert, "message": decision.render(template, hide, mask)})
            else:
                rendered.append(alert)
        out["alerts"] = rendered
    offers = shown.get("eligible")
    if offers and rs.param_templates:
        out["eligible"] = _mask_params(decision, offers, hides, hide, mask)
    step = shown.get("next_step")
    if step:
        node = rs.trees[step["tree"]].nodes[step["node"]]
        for key, template in (("say", node.say_template), ("ask", node.ask_template)):
            if step.get(key) is not None and template is not None and hides(template.reads):
                step = {**step, key: decision.render(template, hide, mask)}
        out["next_step"] = step
    if shown.get("invalid_fields"):
        out["invalid_fields"] = [
            {**f, "got": mask(f["got"])} if hides_field(f["field"]) else f
            for f in shown["invalid_fields"]
        ]
    trace = shown.get("trace")
    if trace:
        rules = [
            {**r, "reads": {p: mask(v) if hides_field(p) else v for p, v in r["reads"].items()}}
            for r in trace["rules"]
        ]
        out["trace"] = {**trace, "rules": rules}
    return out


def _mask_params(
    decision: Decision,
    offers: list[dict[str, Any]],
    hides: Callable[[AbstractSet[str]], bool],
    hide: AbstractSet[str] | None,
    mask: Callable[[Any], str | None],
) -> list[dict[str, Any]]:
    """The offers with each templated parameter that reads a hidden field masked."""
    rs = decision.ruleset
    filled = []
    for offer in offers:
        params = rs.param_templates.get(offer["rule"])
        if params and any(hides(p.template.reads) for p in params):
            static = rs.eligible_out[offer["rule"]]["params"]
            filled.append({**offer, "params": decision.fill_params(static, params, hide, mask)})
        else:
            filled.append(offer)
    return filled


def _mask_inputs(
    inputs: dict[str, Any], masked: frozenset[str], masker: Masker | None
) -> dict[str, Any]:
    """Mask masked fields inside the request's context overrides and answers."""
    if masker is None or not masked:
        return inputs
    for key, prefix in (("context", ""), ("answers", "answers.")):
        value = inputs.get(key)
        # dict first: an isinstance check against the Mapping ABC costs a microsecond or two
        # on every decision that has no answers (None).
        if value.__class__ is dict or (value is not None and isinstance(value, Mapping)):
            inputs[key] = mask_tree(value, prefix, masked, masker)
    return inputs


def mask_tree(
    value: Mapping[str, Any], prefix: str, masked: AbstractSet[str], masker: Masker
) -> Mapping[str, Any]:
    """``value`` (nested objects under ``prefix``) with the fields at ``masked`` paths masked.

    Objects with no masked field below them are returned as they are, not copied.
    """
    above = _above(frozenset(masked))
    if prefix not in above:
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        path = prefix + key
        if path in masked:
            out[key] = masker.mask(item)
        elif (item.__class__ is dict or _mapping(item)) and path + "." in above:
            out[key] = mask_tree(item, path + ".", masked, masker)
        else:
            out[key] = item
    return out


def _mapping(value: Any) -> bool:
    """A mapping other than a dict (rare): values of JSON's own types are not."""
    return value.__class__ not in _PLAIN and isinstance(value, Mapping)


_PLAIN = frozenset((str, int, float, bool, list, type(None)))


@functools.lru_cache(maxsize=256)
def _above(masked: frozenset[str]) -> frozenset[str]:
    """Every prefix (ending in a dot, or empty) that has a masked field below it."""
    found = {""}
    for path in masked:
        steps = path.split(".")
        found.update(".".join(steps[:n]) + "." for n in range(1, len(steps)))
    return frozenset(found)


# "retire": a ruleset retired (serving nobody until a revision is activated again), with why.
# "abandoned": a change recorded and then not applied (another change came first, or the
# store refused it); its routing never served. "approve" and "reject": a second author's
# decision on a revision deployed while approval was required (its deploy record says
# "status": "pending"); an approval also activates it, and carries the routing it makes.
RULESET_ACTIONS = (
    "deploy",
    "activate",
    "rollback",
    "rollout",
    "shadow",
    "refused",
    "abandoned",
    "approve",
    "reject",
    "retire",
)
# An agent's answer to an alert. "accepted" took its advice; "overridden" did otherwise, and
# says why (the note is required); "acted" is kept for desktops built before the two.
ACK_OUTCOMES = ("acknowledged", "acted", "accepted", "overridden", "dismissed")


def ruleset_record(
    *,
    record_id: str,
    action: str,
    name: str,
    revision: int | None,
    digest: str,
    actor: Actor | None,
    details: Mapping[str, Any] | None = None,
) -> LedgerRecord:
    """A ruleset change: who deployed, activated, rolled back, re-routed, approved or
    rejected which revision.

    ``details`` holds what the action needs to be understood later: the previous active
    revision, the rollout percent, the test summary of a deploy (and ``status: pending`` when
    it waits for approval), the reason of a refusal or a rejection, the ``decision`` of an
    approval or rejection and who deployed what it decides, and for a change of what serves,
    the ``routing`` it makes (``active``, ``canary``, ``percent``, ``shadow``, ``version``),
    recorded before it is applied.
    """
    if action not in RULESET_ACTIONS:
        raise ValueError(f"unknown ruleset action {action!r}; expected one of {RULESET_ACTIONS}")
    return LedgerRecord(
        id=record_id,
        kind="ruleset",
        actor=actor,
        ruleset=RulesetRef(name=name, revision=revision, digest=digest),
        data={"action": action, **(details or {})},
    )


def alert_record(
    *,
    record_id: str,
    alert_id: str,
    rule: str,
    severity: str,
    message: str,
    ruleset: RulesetRef,
    customer_id: str | None,
    agent_id: str | None,
    interaction_id: str | None,
    trigger: str,
    decision_id: str | None = None,
    due_at: str | None = None,
) -> LedgerRecord:
    """An alert delivered to an agent's desktop, and the evaluation that raised it (for a
    timer rule, ``due_at``: when its evaluation was due)."""
    data: dict[str, Any] = {"alert_id": alert_id, "trigger": trigger, "decision_id": decision_id}
    if due_at is not None:
        data["due_at"] = due_at
    whom = (customer_id, agent_id, interaction_id)
    return _alert_record("alert", record_id, rule, severity, message, ruleset, data, whom)


def suppressed_record(
    *,
    record_id: str,
    alert_id: str,
    rule: str,
    severity: str,
    message: str,
    reason: str,
    ruleset: RulesetRef,
    customer_id: str | None,
    agent_id: str | None,
    interaction_id: str | None,
    trigger: str,
    decision_id: str | None = None,
) -> LedgerRecord:
    """An alert the contact policy held back from the agent, and why: ``quiet`` (the agent
    dismissed one lately), ``topic`` (an alert of its topic at least as severe is shown) or
    ``limit`` (the interaction had its most alerts for the window)."""
    data = {"alert_id": alert_id, "reason": reason, "trigger": trigger, "decision_id": decision_id}
    whom = (customer_id, agent_id, interaction_id)
    return _alert_record(
        "alert_suppressed", record_id, rule, severity, message, ruleset, data, whom
    )


def _alert_record(
    kind: Kind,
    record_id: str,
    rule: str,
    severity: str,
    message: str,
    ruleset: RulesetRef,
    data: dict[str, Any],
    whom: tuple[str | None, str | None, str | None],
) -> LedgerRecord:
    customer_id, agent_id, interaction_id = whom
    return LedgerRecord(
        id=record_id,
        kind=kind,
        customer_id=customer_id,
        agent_id=agent_id,
        interaction_id=interaction_id,
        ruleset=ruleset,
        outputs={"alerts": [{"rule": rule, "severity": severity, "message": message}]},
        data=data,
    )


def escalated_record(
    *,
    record_id: str,
    alert_id: str,
    supervisor: str,
    raised_at: str | None,
    ack_within: str,
    customer_id: str | None,
    agent_id: str | None,
    interaction_id: str | None,
) -> LedgerRecord:
    """An alert that needed an acknowledgement and got none in time, re-raised to the
    agent's supervisor."""
    return LedgerRecord(
        id=record_id,
        kind="alert_escalated",
        customer_id=customer_id,
        agent_id=agent_id,
        interaction_id=interaction_id,
        data={
            "alert_id": alert_id,
            "supervisor": supervisor,
            "raised_at": raised_at,
            "ack_within": ack_within,
        },
    )


def escalation_record(
    *,
    record_id: str,
    alert_id: str,
    rule: str,
    queue: str,
    priority: int,
    because: str | None,
    reason_code: str,
    ruleset: RulesetRef,
    customer_id: str | None,
    agent_id: str | None,
    interaction_id: str | None,
    trigger: str,
    supervisor: str | None,
    due_at: str | None = None,
) -> LedgerRecord:
    """An escalation rule raised in a live interaction (on a timer: ``due_at``, when its
    evaluation was due), sent to the agent's desktop as ``alert_id`` and, when the ruleset's
    policy names one, to ``supervisor``."""
    data: dict[str, Any] = {
        "alert_id": alert_id,
        "trigger": trigger,
        "reason_code": reason_code,
        "supervisor": supervisor,
    }
    if due_at is not None:
        data["due_at"] = due_at
    return LedgerRecord(
        id=record_id,
        kind="escalation_raised",
        customer_id=customer_id,
        agent_id=agent_id,
        interaction_id=interaction_id,
        ruleset=ruleset,
        outputs={
            "escalation": {"rule": rule, "queue": queue, "priority": priority, "because": because}
        },
        data=data,
    )


def delivered_record(
    *,
    record_id: str,
    alert_id: str,
    delivered_at: str,
    agent_id: str | None,
    customer_id: str | None = None,
    interaction_id: str | None = None,
) -> LedgerRecord:
    """An alert handed to the agent's open desktop stream, and when."""
    return LedgerRecord(
        id=record_id,
        kind="alert_delivered",
        agent_id=agent_id,
        customer_id=customer_id,
        interaction_id=interaction_id,
        data={"alert_id": alert_id, "delivered_at": delivered_at},
    )


def ack_record(
    *,
    record_id: str,
    alert_id: str,
    outcome: str,
    actor: Actor | None,
    agent_id: str | None,
    customer_id: str | None = None,
    interaction_id: str | None = None,
    note: str | None = None,
    delivered_at: str | None = None,
    after_ms: int | None = None,
) -> LedgerRecord:
    """An agent's answer to an alert (``ACK_OUTCOMES``), and how long after the alert reached
    the desktop (``after_ms``, None if it never did: answered from elsewhere)."""
    if outcome not in ACK_OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}; expected one of {', '.join(ACK_OUTCOMES)}")
    data: dict[str, Any] = {"alert_id": alert_id, "outcome": outcome, "note": note}
    if delivered_at is not None:
        data["delivered_at"] = delivered_at
        data["after_ms"] = after_ms
    return LedgerRecord(
        id=record_id,
        kind="ack",
        actor=actor,
        agent_id=agent_id,
        customer_id=customer_id,
        interaction_id=interaction_id,
        data=data,
    )
