"""A decision: what ``evaluate`` returns.

It holds rule indices and the values read; the JSON shape of DESIGN.md §4 is built by
``to_dict`` only when asked, so an evaluation whose caller needs only the fired rule ids pays
for nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from engine.runtime import describe_value, to_datetime

if TYPE_CHECKING:
    from engine.ruleset import CompiledRuleset, TreeMeta, TreeNodeMeta

_SECTIONS = ("eligibility", "escalation", "alerts")
_RESULT = {True: "true", False: "false", None: "unknown"}


class NextStep:
    """Where a tree walk stopped: a question, an outcome, or a node no branch of which holds.

    ``reads`` are the slots of the branch conditions evaluated on the way.
    """

    __slots__ = ("error", "node", "path", "reads", "tree")

    def __init__(
        self,
        tree: TreeMeta,
        node: TreeNodeMeta,
        path: list[str],
        reads: tuple[int, ...],
        error: str | None,
    ) -> None:
        self.tree = tree
        self.node = node
        self.path = path
        self.reads = reads
        self.error = error


def format_time(when: datetime) -> str:
    """RFC 3339 in UTC with milliseconds: ``2026-11-22T10:00:00.000Z``."""
    if when.tzinfo is not UTC:
        when = when.astimezone(UTC)
    return when.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def json_value(value: Any) -> Any:
    """A value read during evaluation, as JSON can carry it."""
    if isinstance(value, datetime):
        return format_time(value)
    return value


class Decision:
    """The outcome of one evaluation."""

    __slots__ = (
        "_alerts",
        "_as_of",
        "_dict",
        "_eligible",
        "_escalation",
        "_invalid",
        "_matches",
        "_records",
        "_step",
        "_values",
        "now",
        "ruleset",
        "trigger",
    )

    def __init__(
        self,
        ruleset: CompiledRuleset,
        values: tuple[Any, ...],
        matches: tuple[Any, ...],
        eligible: list[int],
        escalation: int,
        alerts: list[int],
        step: NextStep | None,
        invalid: list[tuple[str, str, Any]],
        now: datetime | None,
        as_of: Mapping[str, Any] | None,
        trigger: str,
        records: list[tuple[int, int, bool | None]] | None,
    ) -> None:
        self.ruleset = ruleset
        self._values = values
        self._matches = matches
        self._eligible = eligible
        self._escalation = escalation
        self._alerts = alerts
        self._step = step
        self._invalid = invalid
        self.now = now
        self._as_of = as_of
        self.trigger = trigger
        self._records = records
        self._dict: dict[str, Any] | None = None

    # -- cheap accessors ---------------------------------------------------------------------

    @property
    def eligible_rules(self) -> list[str]:
        return list(map(self.ruleset.rule_ids[0].__getitem__, self._eligible))

    @property
    def escalation_rule(self) -> str | None:
        return self.ruleset.rule_ids[1][self._escalation] if self._escalation >= 0 else None

    @property
    def alert_rules(self) -> list[str]:
        return list(map(self.ruleset.rule_ids[2].__getitem__, self._alerts))

    @property
    def tables(self) -> dict[str, Any]:
        """Each table's outputs by id (``None`` where no row matched), as in ``to_dict()``."""
        if self._dict is not None:
            return self._dict["tables"]  # type: ignore[no-any-return]
        return self._tables() if self.trigger == "decision" else {}

    @property
    def values(self) -> dict[str, Any]:
        """The context fields read by this evaluation, by path (unknown ones as None)."""
        return {p: self._values[i] for p, i in self.ruleset.field_slots.items()}

    # -- the JSON shape ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The decision of DESIGN.md §4, without the ids the service assigns."""
        if self._dict is None:
            self._dict = self._build()
        return self._dict

    def _build(self) -> dict[str, Any]:
        rs = self.ruleset
        eligible = [dict(rs.eligible_out[k]) for k in self._eligible]
        escalation = dict(rs.escalation_out[self._escalation]) if self._escalation >= 0 else None
        values = self._values
        alerts = []
        for k in self._alerts:
            meta = rs.alert_meta[k]
            alerts.append(
                {
                    "rule": meta.rule.id,
                    "severity": meta.rule.severity,
                    "message": meta.message(values),
                }
            )
        return {
            "ruleset": rs.name,
            "revision": rs.revision,
            "digest": rs.digest,
            "evaluated_at": format_time(self.now) if self.now is not None else None,
            "eligible": eligible,
            "escalation": escalation,
            "alerts": alerts,
            "tables": self._tables() if self.trigger == "decision" else {},
            "next_step": self._next_step(),
            "missing_fields": self.missing_fields,
            "stale_fields": self.stale_fields,
            "invalid_fields": [
                {"field": p, "expected": e, "got": describe_value(v)} for p, e, v in self._invalid
            ],
            "errors": self._errors(),
            "trace": self._trace() if self._records is not None else None,
        }

    def _tables(self) -> dict[str, Any]:
        return self.ruleset.table_outputs(self._matches)

    def _errors(self) -> list[dict[str, Any]]:
        errors: list[dict[str, Any]] = []
        if not self.ruleset.has_unique_tables and (self._step is None or not self._step.error):
            return errors
        for meta, matched in zip(self.ruleset.tables, self._matches, strict=True):
            if meta.hit == "unique" and len(matched) > 1:
                rows = ", ".join(str(r + 1) for r in matched)
                errors.append(
                    {"table": meta.id, "error": f"hit policy unique, but rows {rows} all match"}
                )
        step = self._step
        if step is not None and step.error is not None:
            errors.append({"tree": step.tree.id, "error": step.error})
        return errors

    def _next_step(self) -> dict[str, Any] | None:
        step = self._step
        if step is None:
            return None
        node = step.node
        out: dict[str, Any] = {"tree": step.tree.id, "node": node.id}
        if node.outcome is not None:
            out["outcome"] = node.outcome
            out["say"] = node.say(self._values) if node.say is not None else None
            out["queue"] = node.queue
        elif step.error is not None:
            out["error"] = step.error
            lacking = self._unknown((*step.reads, *node.reads))
            if lacking:
                out["error"] += "; unknown: " + ", ".join(lacking)
        else:
            out["ask"] = node.ask
            out["answer"] = node.answer
        out["path"] = list(step.path)
        return out

    def _unknown(self, slots: Iterable[int]) -> list[str]:
        values = self._values
        paths = self.ruleset.slot_paths
        unknown = {paths[i] for i in slots if values[i] is None}
        if unknown and self._invalid:
            unknown.difference_update(p for p, _, _ in self._invalid)
        return sorted(unknown)

    @property
    def missing_fields(self) -> list[str]:
        """Declared fields the evaluated rules read that were absent or null."""
        needed = self.ruleset.needed[self.trigger]
        if self._step is not None and self._step.reads:
            return self._unknown((*needed, *self._step.reads))
        return self._unknown(needed)

    @property
    def stale_fields(self) -> list[str]:
        """Fields read with a ``max_age`` whose ``as_of`` is older than ``now - max_age``."""
        if not self._as_of or self.now is None:
            return []
        rs = self.ruleset
        slots = set(rs.needed[self.trigger])
        if self._step is not None:
            slots.update(self._step.reads)
        stale = []
        for i in slots:
            path = rs.slot_paths[i]
            meta = rs.fields.get(path)
            if meta is None or meta.max_age is None or self._values[i] is None:
                continue
            as_of = _as_of_for(self._as_of, path)
            if as_of is not None and self.now - as_of > meta.max_age:
                stale.append(path)
        return sorted(stale)

    def _trace(self) -> dict[str, Any]:
        rs = self.ruleset
        model = rs.model
        rules = []
        assert self._records is not None
        for section, k, result in self._records:
            name = _SECTIONS[section]
            rule = getattr(model, name)[k]
            reads = rs.rule_reads[name][k]
            rules.append(
                {
                    "section": name,
                    "rule": rule.id,
                    "result": _RESULT[result],
                    "reads": {rs.slot_paths[i]: json_value(self._values[i]) for i in reads},
                }
            )
        tables = []
        for meta, matched in zip(rs.tables, self._matches, strict=True):
            rows = ([matched] if matched >= 0 else []) if meta.hit == "first" else matched
            tables.append({"table": meta.id, "matched_rows": [r + 1 for r in rows]})
        tree = None
        if self._step is not None:
            tree = {"tree": self._step.tree.id, "path": list(self._step.path)}
        return {"rules": rules, "tables": tables, "tree": tree}


def _as_of_for(as_of: Mapping[str, Any], path: str) -> datetime | None:
    """The ``as_of`` of the longest prefix of ``path`` that has one."""
    probe = path
    while True:
        if probe in as_of:
            return to_datetime(as_of[probe])
        if "." not in probe:
            return None
        probe = probe.rsplit(".", 1)[0]
