"""Replay: what a candidate ruleset would have decided on recorded decisions (the flip report).

For each decision record of the candidate's ruleset in a time range, the recorded inputs are
evaluated again by the candidate, at the recorded ``now`` with the recorded field ages, and its
outputs are compared with the recorded ones:

- **rules** that fired only before (``stopped``) or only now (``started``), per section;
- **offers** gained or lost; **queues** routed to differently (``retention → none``);
- **alerts** raised or no longer raised.

Each change is counted and comes with up to ``examples`` decision ids. Two kinds of decision
are replayed but flagged, because their replay may differ for reasons other than the rules:
those that read values stored masked (the candidate sees the keyed hash, not the value) and
those for which the candidate reads fields the record does not hold (the recorded revision
did not read them, so they are missing now).

This is a pure function over ledger records: it writes nothing and reads no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from audit.masking import is_masked
from audit.query import LedgerQuery, LedgerReader
from audit.record import LedgerRecord
from engine import CompiledRuleset, EvaluationError
from engine.runtime import to_datetime


@dataclass
class Change:
    """One kind of change and the decisions that show it."""

    count: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, decision_id: str, limit: int) -> None:
        self.count += 1
        if len(self.examples) < limit:
            self.examples.append(decision_id)


@dataclass
class FlipReport:
    """How many recorded decisions the candidate would change, and how."""

    ruleset: str
    candidate_digest: str
    replayed: int = 0
    changed: int = 0
    skipped: int = 0  # records that could not be replayed (see ``errors``)
    read_masked: int = 0
    read_unrecorded: int = 0
    unrecorded_fields: set[str] = field(default_factory=set)
    rules: dict[str, Change] = field(default_factory=dict)  # "started:eligibility:rule-id"
    offers: dict[str, Change] = field(default_factory=dict)  # "gained:offer" / "lost:offer"
    queues: dict[str, Change] = field(default_factory=dict)  # "old → new" (none for no route)
    alerts: dict[str, Change] = field(default_factory=dict)  # "raised:rule" / "dropped:rule"
    errors: dict[str, Change] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        def changes(table: dict[str, Change]) -> list[dict[str, Any]]:
            ordered = sorted(table.items(), key=lambda kv: (-kv[1].count, kv[0]))
            return [{"change": k, "count": c.count, "examples": c.examples} for k, c in ordered]

        return {
            "ruleset": self.ruleset,
            "candidate_digest": self.candidate_digest,
            "replayed": self.replayed,
            "changed": self.changed,
            "unchanged": self.replayed - self.changed,
            "skipped": self.skipped,
            "read_masked_values": self.read_masked,
            "read_unrecorded_fields": self.read_unrecorded,
            "unrecorded_fields": sorted(self.unrecorded_fields),
            "rules": changes(self.rules),
            "offers": changes(self.offers),
            "queues": changes(self.queues),
            "alerts": changes(self.alerts),
            "errors": changes(self.errors),
        }


def replay(
    records: Iterable[LedgerRecord], candidate: CompiledRuleset, *, examples: int = 5
) -> FlipReport:
    """Re-evaluate the decision records of ``candidate``'s ruleset and report the changes.

    ``records`` would typically be a ``LedgerReader.iterate`` over a time range; records of
    other kinds or rulesets are ignored.
    """
    report = FlipReport(ruleset=candidate.name, candidate_digest=candidate.digest)
    for record in records:
        if record.kind != "decision" or record.ruleset is None:
            continue
        if record.ruleset.name != candidate.name:
            continue
        try:
            outputs = _evaluate(record, candidate, report)
        except (EvaluationError, ValueError, TypeError) as exc:
            report.skipped += 1
            report.errors.setdefault(str(exc), Change()).add(record.id, examples)
            continue
        report.replayed += 1
        if _compare(record, outputs, report, examples):
            report.changed += 1
    return report


def _evaluate(
    record: LedgerRecord, candidate: CompiledRuleset, report: FlipReport
) -> dict[str, Any]:
    now = to_datetime(record.evaluated_at) if record.evaluated_at else None
    context: dict[str, Any] = {}
    answers: dict[str, Any] = {}
    as_of: dict[str, datetime] = {}
    masked = False
    for path, value in record.context.items():
        if path.startswith("answers."):
            answers[path.removeprefix("answers.")] = value.value
        else:
            _put(context, path, value.value)
        masked = masked or is_masked(value.value)
        if value.age_ms is not None and now is not None:
            as_of[path] = now - timedelta(milliseconds=value.age_ms)
    inputs = record.inputs
    if isinstance(inputs.get("answers"), Mapping):
        answers = {**answers, **inputs["answers"]}
    decision = candidate.evaluate(
        context,
        answers=answers or None,
        now=now,
        counters=inputs.get("counters"),
        as_of=as_of or None,
        tree=inputs.get("tree"),
        trigger=inputs.get("trigger", "decision"),
    )
    unrecorded = set(decision.read_paths) - set(record.context)
    if unrecorded:
        report.read_unrecorded += 1
        report.unrecorded_fields |= unrecorded
    if masked:
        report.read_masked += 1
    return decision.to_dict()


def _put(target: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    for name in parents:
        child = target.get(name)
        if not isinstance(child, dict):
            child = target[name] = {}
        target = child
    target[leaf] = value


def _compare(record: LedgerRecord, new: Mapping[str, Any], report: FlipReport, limit: int) -> bool:
    old = record.outputs
    did = record.id
    changed = False

    def note(table: dict[str, Change], key: str) -> None:
        nonlocal changed
        changed = True
        table.setdefault(key, Change()).add(did, limit)

    for section, old_ids, new_ids in (
        ("eligibility", _ids(old.get("eligible")), _ids(new.get("eligible"))),
        ("escalation", _ids([old.get("escalation")]), _ids([new.get("escalation")])),
        ("alerts", _ids(old.get("alerts")), _ids(new.get("alerts"))),
    ):
        for rule in sorted(old_ids - new_ids):
            note(report.rules, f"stopped:{section}:{rule}")
        for rule in sorted(new_ids - old_ids):
            note(report.rules, f"started:{section}:{rule}")
    old_offers = {str(e.get("offer")) for e in old.get("eligible") or ()}
    new_offers = {str(e.get("offer")) for e in new.get("eligible") or ()}
    for offer in sorted(old_offers - new_offers):
        note(report.offers, f"lost:{offer}")
    for offer in sorted(new_offers - old_offers):
        note(report.offers, f"gained:{offer}")
    old_queue = (old.get("escalation") or {}).get("queue") or "none"
    new_queue = (new.get("escalation") or {}).get("queue") or "none"
    if old_queue != new_queue:
        note(report.queues, f"{old_queue} → {new_queue}")
    old_alerts = _ids(old.get("alerts"))
    new_alerts = _ids(new.get("alerts"))
    for rule in sorted(old_alerts - new_alerts):
        note(report.alerts, f"dropped:{rule}")
    for rule in sorted(new_alerts - old_alerts):
        note(report.alerts, f"raised:{rule}")
    return changed


def _ids(items: Iterable[Mapping[str, Any] | None] | None) -> set[str]:
    return {str(item["rule"]) for item in items or () if item}


def replay_range(
    reader: LedgerReader,
    candidate: CompiledRuleset,
    *,
    since: str | None = None,
    until: str | None = None,
    examples: int = 5,
) -> FlipReport:
    """``replay`` over the candidate's ruleset's decisions recorded in ``[since, until)``."""
    query = LedgerQuery(ruleset=candidate.name, kind="decision", since=since, until=until)
    return replay(reader.iterate(query), candidate, examples=examples)
