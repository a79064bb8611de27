"""The explanation pack of one decision: what it gave, why (at most four reasons, ranked),
on which data, by which rules as the store keeps their text, what the agent saw and did,
and the smallest change of one input that would have changed it.

    the record (ledger)  ─┐
    the stored revision  ─┼─▶ outcome, reasons, data, rules
      (text and compiled) │
    the recorded inputs  ─┴─▶ engine.counterfactuals.explore ─▶ counterfactuals, checked

The pack reads what the record holds and nothing more: a ``pii`` value stays the keyed hash
the record stores, and an input stored masked is never changed by a counterfactual (the
re-evaluation would see the hash, not the value); the pack says so. Everything here blocks
(the store, the compile of a revision no longer served, the re-evaluations): run it in a
worker thread.

Reasons are ranked: the escalation first (it decides where the customer goes), then the
offers in the order the document writes their rules, then the alerts, the most severe first
and in document order among equals; the first four are the pack's reasons.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from audit.masking import Masker, is_masked
from audit.record import LedgerRecord
from audit.recording import masked_paths
from audit.replay import recorded_inputs
from engine import CompiledRuleset, Decision, EvaluationError, RulesetRegistry, document_digest
from engine.counterfactuals import (
    ABSENT,
    BUDGET,
    MAX_TARGETS,
    Counterfactual,
    Exploration,
    Inputs,
    explore,
    rule_inputs,
    targets,
)
from engine.errors import FrontlineError, RulesetError
from engine.model import SEVERITIES
from engine.source import Locator, load_document
from server.service.answers import (
    ExplanationPack,
    HumanStep,
    PackAlert,
    PackChange,
    PackCounterfactual,
    PackDatum,
    PackEscalation,
    PackExploration,
    PackNotExplored,
    PackOffer,
    PackOutcome,
    PackReason,
    PackRevision,
    PackRule,
    PackTable,
    PackTableInput,
    PackTableRow,
    PackUnflipped,
    PackUnknownRule,
)

MAX_REASONS = 4
_SECTIONS = ("eligibility", "escalation", "alerts")


def reason_code(section: str, rule: str, written: str | None) -> str:
    """A rule's reason code: the one it is written with, else ``<section>/<rule id>``."""
    return written if written else f"{section}/{rule}"


def build_pack(
    record: LedgerRecord,
    human: list[HumanStep],
    registry: RulesetRegistry | None,
    masker: Masker | None,
) -> ExplanationPack:
    """The pack of a decision ``record`` (blocking)."""
    outputs = record.outputs
    compiled, stored, note = _revision(record, registry)
    data_rules = _document_rules(stored)
    fired = _fired(record)
    reasons = _reasons(record, compiled)
    rules = [
        _rule(section, rule, data_rules) for section, rule in fired if (section, rule) in data_rules
    ]
    reads = _reads_by_rule(compiled, fired)
    stale = set(record.stale_fields)
    data = [
        PackDatum(
            field=path,
            value=value.value,
            source=value.source,
            age_ms=value.age_ms,
            masked=is_masked(value.value),
            stale=path in stale,
            read_by=sorted(rule for rule, paths in reads.items() if path in paths),
        )
        for path, value in sorted(record.context.items())
    ]
    inputs, replayed, why = _replay(record, compiled, note)
    trace = replayed.to_dict()["trace"] if replayed is not None else None
    explored, exploration = _explore(record, compiled, masker, inputs, replayed, why)
    counterfactuals, unflipped, not_explored = _counterfactuals(explored)
    escalation = outputs.get("escalation")
    ref = record.ruleset
    return ExplanationPack(
        decision_id=record.id,
        customer_id=record.customer_id,
        agent_id=record.agent_id,
        interaction_id=record.interaction_id,
        recorded_at=record.recorded_at,
        evaluated_at=record.evaluated_at,
        revision=(
            PackRevision(
                name=ref.name, revision=ref.revision, digest=ref.digest, stored=stored is not None
            )
            if ref is not None
            else None
        ),
        outcome=PackOutcome(
            offers=[
                PackOffer(offer=e["offer"], rule=e["rule"], params=e.get("params") or {})
                for e in outputs.get("eligible") or ()
            ],
            escalation=(
                PackEscalation(
                    queue=escalation["queue"],
                    rule=escalation["rule"],
                    priority=escalation.get("priority"),
                )
                if escalation
                else None
            ),
            alerts=[
                PackAlert(rule=a["rule"], severity=a["severity"], message=a.get("message", ""))
                for a in outputs.get("alerts") or ()
            ],
            next_step=outputs.get("next_step"),
            tables=outputs.get("tables") or {},
        ),
        reasons=reasons[:MAX_REASONS],
        more_reasons=max(0, len(reasons) - MAX_REASONS),
        data=data,
        missing_fields=list(record.missing_fields),
        stale_fields=list(record.stale_fields),
        invalid_fields=list(outputs.get("invalid_fields") or ()),
        rules=rules,
        tables=_tables(record, stored, trace),
        unknown_rules=_unknown_rules(trace, data_rules),
        human=human,
        counterfactuals=counterfactuals,
        unflipped=unflipped,
        not_explored=not_explored,
        exploration=exploration,
    )


# -- the revision: compiled, and its stored text ----------------------------------------------


class _Stored:
    """The stored revision's document: its data and where each part of it is in the text."""

    def __init__(self, data: Any, locator: Locator) -> None:
        self.data = data
        self.locator = locator


def _revision(
    record: LedgerRecord, registry: RulesetRegistry | None
) -> tuple[CompiledRuleset | None, _Stored | None, str | None]:
    """The compiled revision that decided and its stored text, each only when it is the one
    the record names (same digest); and why not, when either is missing."""
    ref = record.ruleset
    if ref is None or ref.revision is None or registry is None:
        return None, None, "the record names no stored revision"
    try:
        text = registry.store.get_revision(ref.name, ref.revision)
    except FrontlineError as exc:
        return None, None, f"the store could not give revision {ref.revision}: {exc}"
    stored = None
    if text is not None:
        try:
            data, locator = load_document(text.text, f"{ref.name}@{ref.revision}")
        except RulesetError:
            data = locator = None
        if data is not None and locator is not None and document_digest(data) == ref.digest:
            stored = _Stored(data, locator)
    if stored is None:
        return (
            None,
            None,
            f"the store holds no text of {ref.name} revision {ref.revision} with the digest "
            "the decision recorded",
        )
    try:
        compiled = registry.get(ref.name, ref.revision)
    except FrontlineError as exc:
        return None, stored, f"revision {ref.revision} could not be compiled: {exc}"
    if compiled.digest != ref.digest:
        return None, stored, "the compiled revision's digest is not the one the decision recorded"
    return compiled, stored, None


def _document_rules(stored: _Stored | None) -> dict[tuple[str, str], tuple[int | None, Any]]:
    """Each rule of the stored document by (section, id): the line it starts on in the
    stored text (None for a document without positions: JSON) and its data."""
    found: dict[tuple[str, str], tuple[int | None, Any]] = {}
    if stored is None or not isinstance(stored.data, Mapping):
        return found
    for section in _SECTIONS:
        rules = stored.data.get(section)
        for k, rule in enumerate(rules if isinstance(rules, list) else ()):
            if isinstance(rule, Mapping) and isinstance(rule.get("id"), str):
                position = stored.locator.positions.get((section, k))
                found[(section, rule["id"])] = (position.line if position else None, rule)
    return found


def _fired(record: LedgerRecord) -> list[tuple[str, str]]:
    """(section, rule) of each rule that fired: escalation first, offers in document order,
    then alerts in the record's order."""
    out = record.outputs
    fired = []
    escalation = out.get("escalation")
    if escalation:
        fired.append(("escalation", escalation["rule"]))
    fired.extend(("eligibility", e["rule"]) for e in out.get("eligible") or ())
    fired.extend(("alerts", a["rule"]) for a in out.get("alerts") or ())
    return fired


def _model_rule(compiled: CompiledRuleset | None, section: str, rule: str) -> Any:
    if compiled is None:
        return None
    return next((r for r in getattr(compiled.model, section) if r.id == rule), None)


def _reasons(record: LedgerRecord, compiled: CompiledRuleset | None) -> list[PackReason]:
    """Every reason, ranked (the caller keeps the first four)."""
    out = record.outputs
    found: list[tuple[str, str, str]] = []
    escalation = out.get("escalation")
    if escalation:
        text = escalation.get("because") or f"Escalated to {escalation['queue']}"
        found.append(("escalation", escalation["rule"], text))
    for e in out.get("eligible") or ():
        found.append(("eligibility", e["rule"], e.get("because") or f"Eligible for {e['offer']}"))
    alerts = list(enumerate(out.get("alerts") or ()))
    alerts.sort(key=lambda ka: (-_severity(ka[1].get("severity")), ka[0]))
    found.extend(("alerts", a["rule"], a.get("message") or a["rule"]) for _, a in alerts)
    reasons = []
    for rank, (section, rule, text) in enumerate(found, start=1):
        model = _model_rule(compiled, section, rule)
        written = getattr(model, "reason_code", None)
        code = reason_code(section, rule, written)
        reasons.append(PackReason(rank=rank, code=code, section=section, rule=rule, text=text))
    return reasons


def _severity(severity: Any) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else -1


def _rule(
    section: str, rule: str, rules: dict[tuple[str, str], tuple[int | None, Any]]
) -> PackRule:
    """A rule that fired, as the stored text writes it."""
    line, data = rules.get((section, rule), (None, {}))
    when = data.get("when")
    written = data.get("reason_code")
    return PackRule(
        section=section,
        rule=rule,
        reason_code=reason_code(section, rule, written if isinstance(written, str) else None),
        derived_code=not isinstance(written, str),
        when=when if isinstance(when, str) else json.dumps(when),
        because=data.get("because"),
        line=line,
        offer=data.get("offer"),
        queue=data.get("queue"),
        priority=data.get("priority"),
        severity=data.get("severity"),
    )


def _reads_by_rule(
    compiled: CompiledRuleset | None, fired: list[tuple[str, str]]
) -> dict[str, set[str]]:
    """``<section>/<rule>`` → the inputs it reads, for each rule that fired."""
    if compiled is None:
        return {}
    index = {
        section: {r.id: k for k, r in enumerate(getattr(compiled.model, section))}
        for section in _SECTIONS
    }
    return {
        f"{section}/{rule}": set(rule_inputs(compiled, section, index[section][rule]))
        for section, rule in fired
        if rule in index[section]
    }


def _unknown_rules(
    trace: Mapping[str, Any] | None, rules: dict[tuple[str, str], tuple[int | None, Any]]
) -> list[PackUnknownRule]:
    """The rules whose condition was unknown when the recorded inputs were evaluated again,
    in the stored document's order."""
    if trace is None:
        return []
    found = []
    for step in trace["rules"]:
        if step["result"] != "unknown":
            continue
        section, rule = step["section"], step["rule"]
        line, data = rules.get((section, rule), (None, {}))
        when = data.get("when")
        found.append(
            PackUnknownRule(
                section=section,
                rule=rule,
                when=when if isinstance(when, str) else json.dumps(when),
                missing=sorted(path for path, value in step["reads"].items() if value is None),
                line=line,
                offer=data.get("offer"),
                queue=data.get("queue"),
                severity=data.get("severity"),
            )
        )
    order = {key: k for k, key in enumerate(rules)}  # sections in _SECTIONS order, as written
    found.sort(key=lambda r: order.get((r.section, r.rule), len(order)))
    return found


def _tables(
    record: LedgerRecord, stored: _Stored | None, trace: Mapping[str, Any] | None
) -> list[PackTable]:
    """Each decision table: its outputs as recorded; with the stored text, its inputs and the
    values the decision had for them; with a replay, the rows that gave the outputs."""
    recorded = record.outputs.get("tables") or {}
    matched = {t["table"]: t["matched_rows"] for t in trace["tables"]} if trace else {}
    written = stored.data.get("tables") if stored is not None else None
    if stored is None or not isinstance(written, list):
        return [PackTable(table=name, outputs=out) for name, out in recorded.items()]
    positions = stored.locator.positions
    found = []
    for k, table in enumerate(written):
        if not isinstance(table, Mapping) or table.get("id") not in recorded:
            continue
        name = table["id"]
        rows: list[Any] = table["rows"] if isinstance(table.get("rows"), list) else []
        position = positions.get(("tables", k))
        inputs = []
        for path in table.get("inputs") or ():
            had = record.context.get(path)
            inputs.append(
                PackTableInput(
                    field=str(path),
                    value=had.value if had is not None else None,
                    missing=had is None or had.value is None,
                )
            )
        picked = []
        for number in matched.get(name, ()):
            row_at = positions.get(("tables", k, "rows", number - 1))
            cells = rows[number - 1] if 0 < number <= len(rows) else []
            picked.append(
                PackTableRow(
                    row=number,
                    cells=list(cells) if isinstance(cells, list) else [cells],
                    line=row_at.line if row_at else None,
                )
            )
        found.append(
            PackTable(
                table=name,
                outputs=recorded[name],
                inputs=inputs,
                output_names=[str(o) for o in table.get("outputs") or ()],
                hit=table.get("hit"),
                description=table.get("description"),
                line=position.line if position else None,
                matched_rows=picked,
            )
        )
    return found


# -- counterfactuals ---------------------------------------------------------------------------


def _outcome(decision: Decision) -> tuple[list[str], str | None, list[str]]:
    return decision.eligible_rules, decision.escalation_rule, sorted(decision.alert_rules)


def _recorded_outcome(record: LedgerRecord) -> tuple[list[str], str | None, list[str]]:
    out = record.outputs
    escalation = out.get("escalation")
    return (
        [e["rule"] for e in out.get("eligible") or ()],
        escalation["rule"] if escalation else None,
        sorted(a["rule"] for a in out.get("alerts") or ()),
    )


def _replay(
    record: LedgerRecord, compiled: CompiledRuleset | None, note: str | None
) -> tuple[Inputs | None, Decision | None, str | None]:
    """The recorded inputs and the revision evaluated on them again (with its trace), when
    that gives the recorded outcome; else why not."""
    if compiled is None:
        return None, None, note or "the revision is not available"
    inputs, _ = recorded_inputs(record.context, record.inputs, record.evaluated_at)
    try:
        replayed = inputs.evaluate(compiled, trace=True)
    except (EvaluationError, ValueError, TypeError) as exc:
        return None, None, f"the recorded inputs could not be evaluated: {exc}"
    if _outcome(replayed) != _recorded_outcome(record):
        why = (
            "evaluating the recorded inputs again does not give the recorded outcome (a value "
            "it used is stored masked, or the record lacks one), so no counterfactual is claimed"
        )
        return None, None, why
    return inputs, replayed, None


def _explore(
    record: LedgerRecord,
    compiled: CompiledRuleset | None,
    masker: Masker | None,
    inputs: Inputs | None,
    baseline: Decision | None,
    why: str | None,
) -> tuple[list[Exploration], PackExploration]:
    def summary(explored: list[Exploration], matches: bool, why: str | None, skipped: int) -> Any:
        return PackExploration(
            targets=len(explored),
            skipped_targets=skipped,
            evaluations=sum(e.evaluations for e in explored),
            budget_per_target=BUDGET,
            max_targets=MAX_TARGETS,
            replay_matches=matches,
            note=why,
        )

    if compiled is None or inputs is None or baseline is None:
        return [], summary([], False, why, 0)
    fixed = dict.fromkeys(masked_paths(compiled, masker), "masked")
    fixed.update({p: "masked" for p, v in record.context.items() if is_masked(v.value)})
    explored = explore(compiled, inputs, fixed=fixed, decision=baseline)
    skipped = max(0, len(targets(baseline)) - len(explored))
    return explored, summary(explored, True, None, skipped)


def _counterfactuals(
    explored: list[Exploration],
) -> tuple[list[PackCounterfactual], list[PackUnflipped], list[PackNotExplored]]:
    found: list[PackCounterfactual] = []
    unflipped: list[PackUnflipped] = []
    not_explored: dict[str, str] = {}
    for exploration in explored:
        target = exploration.target
        for path, why in exploration.not_explored.items():
            not_explored.setdefault(path, why)
        if not exploration.found:
            if exploration.exhausted:
                reason = (
                    f"none of the {exploration.evaluations} changes of one input tried (the "
                    f"budget) flips it; {exploration.candidates} candidates in all"
                )
            elif exploration.candidates:
                reason = (
                    f"no change of one input flips it ({exploration.evaluations} tried): it "
                    "needs more than one input to change"
                )
            else:
                reason = "its condition compares no input with a literal that could be changed"
            unflipped.append(
                PackUnflipped(
                    target=target.kind,
                    section=target.section,
                    rule=target.rule,
                    offer=target.offer,
                    queue=target.queue,
                    reason=reason,
                )
            )
            continue
        best, *others = exploration.found
        found.append(
            PackCounterfactual(
                target=target.kind,
                section=target.section,
                rule=target.rule,
                offer=target.offer,
                queue=target.queue,
                text=best.text,
                field=best.path,
                old=best.old,
                new=_value(best.new),
                removed=best.new is ABSENT,
                change=best.change,
                effect=best.effect,
                alternatives=[_change(c) for c in others],
            )
        )
    return (
        found,
        unflipped,
        [
            PackNotExplored(field=path, reason=why, text=f"not explored: {path} ({why})")
            for path, why in sorted(not_explored.items())
        ],
    )


def _value(value: Any) -> Any:
    return None if value is ABSENT else value


def _change(c: Counterfactual) -> PackChange:
    return PackChange(
        field=c.path,
        old=c.old,
        new=_value(c.new),
        removed=c.new is ABSENT,
        change=c.change,
        text=c.text,
    )
