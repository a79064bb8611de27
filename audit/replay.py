"""Replay: what a candidate ruleset would have decided on recorded decisions (the flip report).

For each decision record of the candidate's ruleset in a time range, the recorded inputs are
evaluated again by the candidate, at the recorded ``now`` with the recorded field ages, and its
outputs are compared with the recorded ones:

- **rules** that fired only before (``stopped``) or only now (``started``), per section;
- **offers** gained or lost; **queues** routed to differently (``retention → none``);
- **alerts** raised or no longer raised;
- and everything else an agent would see change (``audit.shown``): an offer's **params**, an
  escalation's **priorities**, an alert's **severities**, **tables** outputs
  (``credit-amount.credit: 40 → 45``), the **tree**'s outcome or question, and the **texts**
  (an offer's or escalation's ``because``, an alert's message, a tree's ``ask`` and ``say``).

Each change is counted and comes with up to ``examples`` decision ids. Two kinds of decision
are replayed but flagged, because their replay may differ for reasons other than the rules:
those that read values stored masked (the candidate sees the keyed hash, not the value) and
those for which the candidate reads fields the record does not hold (the recorded revision
did not read them, so they are unknown now). A field the record names in ``missing_fields``
is not one of those: the recorded revision read it and did not have it either.

A replay reads each record's stored bytes once and decodes only what it uses (the context,
the request's inputs and which rules fired, not their parameters, messages or trace), and
renders the candidate's decision in the form a record keeps it. A text whose ``{...}`` parts read
a value stored masked is not compared: the candidate sees the keyed hash, and a part that
transforms the value (``lower(...)``) would differ for that reason alone. ``progress(done,
total)`` is called at the start, every ``PROGRESS_EVERY`` records, and at the end (where
``total`` is ``done``); ``total`` is how many records there are, when that is known.

This is a pure function over ledger records: it writes nothing and reads no clock.
``recorded_inputs`` (what a recorded decision was evaluated on, put back in place) is also
what an explanation pack evaluates again to check its counterfactuals.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import msgspec

from audit.masking import PREFIX as MASK_PREFIX
from audit.query import MAX_PAGE, LedgerQuery, LedgerReader
from audit.record import ContextValue, LedgerRecord
from audit.recording import path_steps
from audit.shown import differences as shown_differences
from audit.shown import shown
from engine import CompiledRuleset, Decision, EvaluationError
from engine.counterfactuals import Inputs
from engine.times import parse_time

PROGRESS_EVERY = 1_000  # records between two progress calls
Progress = Callable[[int, int | None], None]  # (records done, total or None)


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
    params: dict[str, Change] = field(default_factory=dict)  # "fee-waiver: {...} → {...}"
    priorities: dict[str, Change] = field(default_factory=dict)  # "vip-churn: 1 → 2"
    severities: dict[str, Change] = field(default_factory=dict)  # "outage: info → critical"
    tables: dict[str, Change] = field(default_factory=dict)  # "credit.amount: 40 → 45"
    tree: dict[str, Change] = field(default_factory=dict)  # "resolved → escalate"
    texts: dict[str, Change] = field(default_factory=dict)  # "message:outage"
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
            "params": changes(self.params),
            "priorities": changes(self.priorities),
            "severities": changes(self.severities),
            "tables": changes(self.tables),
            "tree": changes(self.tree),
            "texts": changes(self.texts),
            "errors": changes(self.errors),
        }


# -- what a replay reads of a stored record: the rest of its bytes is skipped ---------------


class _Ruleset(msgspec.Struct):
    name: str


class _Fired(msgspec.Struct):
    """An eligible offer, the escalation or an alert, as an agent was shown it."""

    rule: Any = None
    offer: Any = None
    params: Any = None
    queue: Any = None
    priority: Any = None
    severity: Any = None
    message: Any = None
    because: Any = None


class _Step(msgspec.Struct):
    """Where the tree walk stopped: the outcome or the question, and its texts."""

    tree: Any = None
    node: Any = None
    outcome: Any = None
    ask: Any = None
    say: Any = None


class _Outputs(msgspec.Struct):
    eligible: list[_Fired] = []
    escalation: _Fired | None = None
    alerts: list[_Fired] = []
    tables: dict[str, Any] = {}
    next_step: _Step | None = None


class _Stored(msgspec.Struct):
    """The fields of a decision record a replay uses."""

    id: str
    kind: str
    ruleset: _Ruleset | None = None
    evaluated_at: str | None = None
    context: dict[str, ContextValue] = {}
    inputs: dict[str, Any] = {}
    outputs: _Outputs | None = None
    missing_fields: list[str] = []


_STORED = msgspec.json.Decoder(_Stored)

# Which rules fired, and what they gave: ((eligible rule, offer), ...), (escalation rule,
# queue) or None, (alert rule, ...); then the rest of what an agent is shown (audit.shown).
_Outcome = tuple[tuple[tuple[str, str], ...], tuple[str, str] | None, tuple[str, ...]]


def _queue(value: Any) -> str:
    return str(value) if value else "none"


def _recorded(outputs: _Outputs | None) -> _Outcome:
    if outputs is None:
        return ((), None, ())
    escalation = outputs.escalation
    return (
        tuple((str(e.rule), str(e.offer)) for e in outputs.eligible),
        (str(escalation.rule), _queue(escalation.queue)) if escalation is not None else None,
        tuple(str(a.rule) for a in outputs.alerts),
    )


def _recorded_shown(outputs: _Outputs | None) -> dict[str, Any]:
    """``audit.shown`` of a recorded decision, from the parts a replay decodes."""
    if outputs is None:
        return shown({})
    step = outputs.next_step
    return shown(
        {
            "eligible": [msgspec.structs.asdict(e) for e in outputs.eligible],
            "escalation": (
                msgspec.structs.asdict(outputs.escalation) if outputs.escalation else None
            ),
            "alerts": [msgspec.structs.asdict(a) for a in outputs.alerts],
            "tables": outputs.tables,
            "next_step": msgspec.structs.asdict(step) if step is not None else None,
        }
    )


def _from_record(record: LedgerRecord) -> _Stored:
    """What a replay uses of a decoded record."""
    return _Stored(
        id=record.id,
        kind=record.kind,
        ruleset=_Ruleset(record.ruleset.name) if record.ruleset is not None else None,
        evaluated_at=record.evaluated_at,
        context=record.context,
        inputs=record.inputs,
        outputs=(
            msgspec.convert(record.outputs, _Outputs)
            if record.outputs and record.kind == "decision"
            else None
        ),
        missing_fields=record.missing_fields,
    )


def replay(
    records: Iterable[LedgerRecord],
    candidate: CompiledRuleset,
    *,
    examples: int = 5,
    progress: Progress | None = None,
    total: int | None = None,
) -> FlipReport:
    """Re-evaluate the decision records of ``candidate``'s ruleset and report the changes.

    ``records`` would typically be a ``LedgerReader.iterate`` over a time range; records of
    other kinds or rulesets are ignored. ``progress(done, total)`` is told how many records
    were read, and ``total`` (how many there are, if known) is passed on to it.
    """
    return _Replayer(candidate, examples).run(_converted(records), progress, total)


def replay_range(
    reader: LedgerReader,
    candidate: CompiledRuleset,
    *,
    since: str | None = None,
    until: str | None = None,
    examples: int = 5,
    progress: Progress | None = None,
) -> FlipReport:
    """``replay`` over the candidate's ruleset's decisions recorded in ``[since, until)``,
    read from their stored bytes; with ``progress``, the records are counted first (from the
    index and the log's tail) so that it is told the total."""
    query = LedgerQuery(ruleset=candidate.name, kind="decision", since=since, until=until)
    total = reader.count(query) if progress is not None else None
    stored = _decoded(reader.bodies(query, MAX_PAGE))
    return _Replayer(candidate, examples).run(stored, progress, total)


def _converted(records: Iterable[LedgerRecord]) -> Iterator[_Stored | Exception]:
    for record in records:
        try:
            yield _from_record(record)
        except msgspec.ValidationError as exc:  # outputs of another shape: skipped
            yield exc


def _decoded(bodies: Iterable[bytes]) -> Iterator[_Stored | Exception]:
    for body in bodies:
        try:
            yield _STORED.decode(body)
        except msgspec.DecodeError as exc:  # counted as skipped, with the reason
            yield exc


def _put(target: dict[str, Any], parts: tuple[str, ...], value: Any) -> None:
    """Set ``value`` at ``parts`` of nested dicts, making the dicts on the way."""
    for name in parts[:-1]:
        child = target.get(name)
        if not isinstance(child, dict):
            child = target[name] = {}
        target = child
    target[parts[-1]] = value


def recorded_inputs(
    recorded: Mapping[str, ContextValue], inputs: Mapping[str, Any], evaluated_at: str | None
) -> tuple[Inputs, set[str]]:
    """What a recorded decision was evaluated on, to evaluate again: its context values (and
    answers) put back in place, its counters, tree and trigger, at its ``now``, each value as
    old as it was then; and the fields whose values are stored masked (an evaluation sees the
    keyed hash, not the value)."""
    now = parse_time(evaluated_at) if evaluated_at else None
    context: dict[str, Any] = {}
    answers: dict[str, Any] = {}
    as_of: dict[str, datetime] = {}
    whens: dict[int, datetime] = {}  # age → moment: a record has few distinct ages
    masked: set[str] = set()
    for path, stored in recorded.items():
        value = stored.value
        parts = path_steps(path)
        if len(parts) == 2:  # customer.tier: one level, the usual shape
            head, leaf = parts
            if head == "answers":
                answers[leaf] = value
            else:
                parent = context.get(head)
                if parent.__class__ is not dict:
                    parent = context[head] = {}
                parent[leaf] = value
        elif parts[0] == "answers":
            answers[path[8:]] = value
        else:
            _put(context, parts, value)
        if value.__class__ is str and value.startswith(MASK_PREFIX):
            masked.add(path)
        age = stored.age_ms
        if age is not None and now is not None:
            when = whens.get(age)
            if when is None:
                when = whens[age] = now - timedelta(milliseconds=age)
            as_of[path] = when
    sent = inputs.get("answers")
    if isinstance(sent, Mapping):
        answers = {**answers, **sent}
    asked = Inputs(
        context,
        answers=answers or None,
        now=now,
        counters=inputs.get("counters"),
        as_of=as_of or None,
        tree=inputs.get("tree"),
        trigger=inputs.get("trigger", "decision"),
    )
    return asked, masked


class _Replayer:
    """One replay: the candidate, what it gives for each rule, and the report being made."""

    def __init__(self, candidate: CompiledRuleset, examples: int) -> None:
        self.candidate = candidate
        self.examples = examples
        self.report = FlipReport(ruleset=candidate.name, candidate_digest=candidate.digest)
        self.offers = {rule: str(out["offer"]) for rule, out in candidate.eligible_out.items()}
        # What an agent is shown per rule, whatever the inputs (see ``_same_shown``).
        self.eligible_shown = {
            rule: (out["params"], out["because"]) for rule, out in candidate.eligible_out.items()
        }
        self.escalation_shown = {
            str(out["rule"]): (out["priority"], out["because"]) for out in candidate.escalation_out
        }
        self.alert_index = {meta.rule.id: k for k, meta in enumerate(candidate.alert_meta)}
        self.has_tables = bool(candidate.tables)
        self.has_trees = bool(candidate.trees)
        self.queues = {str(out["rule"]): _queue(out["queue"]) for out in candidate.escalation_out}

    def run(
        self,
        records: Iterable[_Stored | Exception],
        progress: Progress | None,
        total: int | None,
    ) -> FlipReport:
        report = self.report
        name = self.candidate.name
        done = 0
        told: tuple[int, int | None] = (0, total)
        if progress is not None:
            progress(*told)
        for record in records:
            done += 1
            if progress is not None and done % PROGRESS_EVERY == 0:
                told = (done, max(total, done) if total is not None else None)
                progress(*told)
            if isinstance(record, Exception):
                report.skipped += 1
                reason = f"the record could not be read: {record}"
                report.errors.setdefault(reason, Change()).add("", 0)
                continue
            if record.kind != "decision" or record.ruleset is None:
                continue
            if record.ruleset.name != name:
                continue
            try:
                new, decision, masked = self._evaluate(record)
            except (EvaluationError, ValueError, TypeError) as exc:
                report.skipped += 1
                report.errors.setdefault(str(exc), Change()).add(record.id, self.examples)
                continue
            report.replayed += 1
            old = _recorded(record.outputs)
            changed = old != new and self._compare(record.id, old, new)
            if not self._same_shown(record, decision, masked):
                old_shown = _recorded_shown(record.outputs)
                new_shown = shown(decision.to_dict())
                if masked:
                    self._unmatched_texts(old_shown, new_shown, masked)
                if self._compare_shown(record.id, old_shown, new_shown):
                    changed = True
            if changed:
                report.changed += 1
        if progress is not None and told != (done, done):
            progress(done, done)  # the end: every record is counted now
        return report

    def _evaluate(self, record: _Stored) -> tuple[_Outcome, Decision, set[str]]:
        """The candidate's outcome, its decision, and the fields whose recorded values are
        masked."""
        asked, masked = recorded_inputs(record.context, record.inputs, record.evaluated_at)
        decision = asked.evaluate(self.candidate)
        recorded = record.context
        unrecorded = [p for p in decision.read_paths if p not in recorded]
        if unrecorded and record.missing_fields:
            missing = set(record.missing_fields)
            unrecorded = [p for p in unrecorded if p not in missing]
        report = self.report
        if unrecorded:
            report.read_unrecorded += 1
            report.unrecorded_fields.update(unrecorded)
        if masked:
            report.read_masked += 1
        return self._outcome(decision), decision, masked

    def _same_shown(self, record: _Stored, decision: Decision, masked: set[str]) -> bool:
        """Whether the candidate shows what was recorded, in every part ``_compare_shown``
        compares, for the offers, escalation and alerts both give: a quick test from what the
        candidate knows per rule, so that only a decision that differs is rendered whole."""
        outputs = record.outputs
        if outputs is None:
            return True
        if not self._same_offers(outputs):
            return False
        if outputs.alerts and not self._same_alerts(outputs.alerts, decision, masked):
            return False
        if self.has_tables and outputs.tables != decision.tables:
            return False
        step = outputs.next_step
        if not self.has_trees:
            return step is None
        mine = _step_of(decision.next_step)
        was = _recorded_step(step)
        if masked and was is not None and mine is not None:  # ask, say may show masked values
            was, mine = was[:3], mine[:3]
        return was == mine

    def _same_offers(self, outputs: _Outputs) -> bool:
        eligible = self.eligible_shown
        templated = self.candidate.param_templates
        for offer in outputs.eligible:
            if offer.rule in templated:  # its parameters depend on the inputs: compare whole
                return False
            mine = eligible.get(offer.rule)
            if mine is not None and (offer.params or {}, offer.because) != mine:
                return False
        escalation = outputs.escalation
        if escalation is None:
            return True
        mine = self.escalation_shown.get(escalation.rule)
        return mine is None or (escalation.priority, escalation.because) == mine

    def _same_alerts(self, alerts: list[_Fired], decision: Decision, masked: set[str]) -> bool:
        metas = self.candidate.alert_meta
        for alert in alerts:
            k = self.alert_index.get(alert.rule)
            if k is None:
                continue
            meta = metas[k]
            if alert.severity != meta.rule.severity:
                return False
            template = meta.template
            if template is not None and masked and not template.reads.isdisjoint(masked):
                continue
            if alert.message != decision.alert_message(k):
                return False
        return True

    def _unmatched_texts(self, old: dict[str, Any], new: dict[str, Any], masked: set[str]) -> None:
        """Leave out of both views the texts whose ``{...}`` parts read a masked value."""
        templates = self.candidate.alert_templates
        for key in [*old["texts"], *new["texts"]]:
            if key.startswith("message:"):
                template = templates.get(key[8:])
                if template is not None and not template.reads.isdisjoint(masked):
                    old["texts"].pop(key, None)
                    new["texts"].pop(key, None)
            elif key == "say":  # which node said it is in next_step; any say reading one
                old["texts"].pop(key, None)
                new["texts"].pop(key, None)

    def _outcome(self, decision: Decision) -> _Outcome:
        escalation = decision.escalation_rule
        offers = self.offers
        return (
            tuple((rule, offers[rule]) for rule in decision.eligible_rules),
            (escalation, self.queues[escalation]) if escalation is not None else None,
            tuple(decision.alert_rules),
        )

    def _compare_shown(self, did: str, old: dict[str, Any], new: dict[str, Any]) -> bool:
        """Note what an agent would see change beyond which rules fired: parameters,
        priorities, severities, table outputs, the tree's stop and the texts. Entries only one
        side has are left to ``_compare`` (an offer gained, a rule stopped)."""
        report = self.report
        limit = self.examples
        found = shown_differences(old, new, names=("old", "new"))
        changed = False

        def note(table: dict[str, Change], key: str) -> None:
            nonlocal changed
            changed = True
            table.setdefault(key, Change()).add(did, limit)

        def both(part: str) -> list[tuple[str, Any, Any]]:
            if part not in found:
                return []
            was, now = found[part]["old"], found[part]["new"]
            return [(k, was[k], now[k]) for k in was if k in old[part] and k in new[part]]

        for rule, was, now in both("params"):
            note(report.params, f"{rule}: {_short(was)} → {_short(now)}")
        for rule, was, now in both("severities"):
            note(report.severities, f"{rule}: {was} → {now}")
        for key, _, _ in both("texts"):
            note(report.texts, f"changed:{key}")
        if "priority" in found and old["escalation"] == new["escalation"]:
            note(report.priorities, f"{new['escalation']}: {old['priority']} → {new['priority']}")
        if "tables" in found:
            for table, was in found["tables"]["old"].items():
                now = found["tables"]["new"][table]
                if isinstance(was, dict) and isinstance(now, dict):
                    for name in was:
                        before, after = _short(was.get(name)), _short(now.get(name))
                        if before != after:
                            note(report.tables, f"{table}.{name}: {before} → {after}")
                else:
                    note(report.tables, f"{table}: {_short(was)} → {_short(now)}")
        if "next_step" in found:
            was, now = found["next_step"]["old"], found["next_step"]["new"]
            note(report.tree, f"{was or 'none'} → {now or 'none'}")
        return changed

    def _compare(self, did: str, old: _Outcome, new: _Outcome) -> bool:
        report = self.report
        limit = self.examples
        changed = False

        def note(table: dict[str, Change], key: str) -> None:
            nonlocal changed
            changed = True
            table.setdefault(key, Change()).add(did, limit)

        old_alerts, new_alerts = set(old[2]), set(new[2])
        for section, old_ids, new_ids in (
            ("eligibility", {r for r, _ in old[0]}, {r for r, _ in new[0]}),
            ("escalation", {old[1][0]} if old[1] else set(), {new[1][0]} if new[1] else set()),
            ("alerts", old_alerts, new_alerts),
        ):
            for rule in sorted(old_ids - new_ids):
                note(report.rules, f"stopped:{section}:{rule}")
            for rule in sorted(new_ids - old_ids):
                note(report.rules, f"started:{section}:{rule}")
        old_offers = {offer for _, offer in old[0]}
        new_offers = {offer for _, offer in new[0]}
        for offer in sorted(old_offers - new_offers):
            note(report.offers, f"lost:{offer}")
        for offer in sorted(new_offers - old_offers):
            note(report.offers, f"gained:{offer}")
        old_queue = old[1][1] if old[1] else "none"
        new_queue = new[1][1] if new[1] else "none"
        if old_queue != new_queue:
            note(report.queues, f"{old_queue} → {new_queue}")
        for rule in sorted(old_alerts - new_alerts):
            note(report.alerts, f"dropped:{rule}")
        for rule in sorted(new_alerts - old_alerts):
            note(report.alerts, f"raised:{rule}")
        return changed


def _short(value: Any) -> str:
    """A value as a report key shows it: JSON, cut at 80 characters."""
    text = msgspec.json.encode(value).decode()
    return text if len(text) <= 80 else text[:77] + "..."


def _recorded_step(step: _Step | None) -> tuple[Any, ...] | None:
    if step is None:
        return None
    return (step.tree, step.node, step.outcome, step.ask, step.say)


def _step_of(step: Mapping[str, Any] | None) -> tuple[Any, ...] | None:
    if not step:
        return None
    get = step.get
    return (get("tree"), get("node"), get("outcome"), get("ask"), get("say"))
