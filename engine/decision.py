"""A decision: what ``evaluate`` returns.

It holds the fired rules and the values read; the decision's JSON shape is built by
``to_dict`` only when asked, so an evaluation whose caller needs only the fired rule ids pays
for nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from engine.generated import (
    RAW_ALERTS,
    RAW_ELIGIBLE,
    RAW_ESCALATION,
    RAW_INVALID,
    RAW_MATCHES,
    RAW_VALUES,
)
from engine.parts import fill_params, json_value
from engine.runtime import describe_value
from engine.times import format_time, parse_time

if TYPE_CHECKING:
    from collections.abc import Set as AbstractSet

    from engine.parts import RulesetParts, Template, TreeMeta, TreeNodeMeta

_SECTIONS = ("eligibility", "escalation", "alerts")
_RESULT = {True: "true", False: "false", None: "unknown"}


def _unmasked(value: Any) -> str | None:  # pragma: no cover - nothing is hidden
    return None


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


class Asked:
    """How an evaluation was asked, beyond the context: shared by every plain decision."""

    __slots__ = ("as_of", "now", "records", "step", "trigger")

    def __init__(
        self,
        step: NextStep | None = None,
        now: datetime | None = None,
        as_of: Mapping[str, Any] | None = None,
        trigger: str = "decision",
        records: list[tuple[int, int, bool | None]] | None = None,
    ) -> None:
        self.step = step
        self.now = now
        self.as_of = as_of
        self.trigger = trigger
        self.records = records


PLAIN = Asked()


class Decision:
    """The outcome of one evaluation.

    ``raw`` is what the generated decide function returned: ``(values, eligible rule ids,
    alert rule indices, escalation rule index or -1, invalid fields, *table matches)``.

    A plain evaluation (a context and nothing else) of a ruleset without trees returns an
    instance of that ruleset's subclass (``plain_decision_class``) instead, built by generated
    code that stores only ``_raw``.
    """

    __slots__ = ("_asked", "_dict", "_raw", "ruleset")

    # Set by ``to_dict`` on first use; left unset until then (one store fewer per evaluation).
    _dict: dict[str, Any]

    def __init__(self, ruleset: RulesetParts, raw: tuple[Any, ...], asked: Asked = PLAIN) -> None:
        self.ruleset = ruleset
        self._raw = raw
        self._asked = asked

    @property
    def now(self) -> datetime | None:
        return self._asked.now

    @property
    def trigger(self) -> str:
        return self._asked.trigger

    # -- cheap accessors ---------------------------------------------------------------------

    @property
    def eligible_rules(self) -> list[str]:
        # The generated code collects the ids themselves; a copy keeps the decision intact.
        return [*self._raw[RAW_ELIGIBLE]]

    @property
    def escalation_rule(self) -> str | None:
        k = self._raw[RAW_ESCALATION]
        return self.ruleset.rule_ids[1][k] if k >= 0 else None

    @property
    def alert_rules(self) -> list[str]:
        return list(map(self.ruleset.rule_ids[2].__getitem__, self._raw[RAW_ALERTS]))

    @property
    def tables(self) -> dict[str, Any]:
        """Each table's outputs by id (``None`` where no row matched), as in ``to_dict()``."""
        if self._asked is not PLAIN and self._asked.trigger != "decision":
            return {}
        return self.ruleset.table_outputs(self)

    @property
    def read_paths(self) -> list[str]:
        """The declared context fields this evaluation read (rules, tables, tree), sorted.

        What an audit record must keep to replay the decision.
        """
        rs = self.ruleset
        step = self._asked.step
        if step is None or not step.reads:
            return rs.read_paths[self._asked.trigger]
        slots = {*rs.needed[self._asked.trigger], *step.reads}
        paths = rs.slot_paths
        return sorted(paths[i] for i in slots if paths[i] in rs.fields)

    @property
    def values(self) -> dict[str, Any]:
        """The context fields read by this evaluation, by path (unknown ones as None)."""
        values = self._raw[RAW_VALUES]
        return {p: values[i] for p, i in self.ruleset.field_slots.items()}

    @property
    def matched_rows(self) -> dict[str, list[int]]:
        """Each table's matching rows, numbered from 1 as the document counts them."""
        matches = self._raw[RAW_MATCHES:]
        return {
            meta.id: [r + 1 for r in meta.policy.rows(matched)]
            for meta, matched in zip(self.ruleset.tables, matches, strict=True)
        }

    @property
    def next_step(self) -> dict[str, Any] | None:
        """Where the tree walk stopped, as in ``to_dict()``; None without a tree."""
        return self._next_step()

    def alert_message(self, k: int) -> str:
        """Alert rule ``k``'s message, rendered on this evaluation's values."""
        return self.ruleset.alert_meta[k].message(self._raw[RAW_VALUES])

    def fill_params(
        self,
        params: dict[str, Any],
        templates: tuple[Any, ...],
        hide: AbstractSet[str] | None,
        mask: Callable[[Any], str | None],
    ) -> dict[str, Any]:
        """An offer's ``params`` with its templated ones filled on this evaluation's values,
        each that reads a field in ``hide`` (every one, when None) as ``mask`` of its value."""
        return fill_params(params, templates, self._raw[RAW_VALUES], hide, mask)

    def render(
        self,
        template: Template,
        hide: AbstractSet[str] | None,
        mask: Callable[[Any], str | None],
    ) -> str:
        """One of the ruleset's templates rendered on this evaluation's values, each part that
        reads a field in ``hide`` (every part, when None) printed as ``mask`` of its value."""
        return template.render(self._raw[RAW_VALUES], hide, mask)

    # -- the JSON shape ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The decision as the API returns it, without the ids the service assigns."""
        try:
            return self._dict
        except AttributeError:
            self._dict = self._build()
            return self._dict

    def _build(self) -> dict[str, Any]:
        rs = self.ruleset
        raw = self._raw
        values, invalid = raw[RAW_VALUES], raw[RAW_INVALID]
        eligible_rules, alert_rules = raw[RAW_ELIGIBLE], raw[RAW_ALERTS]
        escalation_rule = raw[RAW_ESCALATION]
        asked = self._asked
        eligible = [dict(rs.eligible_out[rule_id]) for rule_id in eligible_rules]
        if rs.param_templates:
            templated = rs.param_templates
            for offer in eligible:
                found = templated.get(offer["rule"])
                if found is not None:
                    offer["params"] = fill_params(offer["params"], found, values)
        escalation = dict(rs.escalation_out[escalation_rule]) if escalation_rule >= 0 else None
        alerts = []
        for k in alert_rules:
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
            "evaluated_at": format_time(asked.now) if asked.now is not None else None,
            "eligible": eligible,
            "escalation": escalation,
            "alerts": alerts,
            "tables": self.tables,
            "next_step": self._next_step(),
            "missing_fields": self.missing_fields,
            "stale_fields": self.stale_fields,
            "invalid_fields": [
                {"field": p, "expected": e, "got": describe_value(v)} for p, e, v in invalid
            ],
            "errors": self._errors(),
            "trace": self._trace() if asked.records is not None else None,
        }

    def _errors(self) -> list[dict[str, Any]]:
        errors: list[dict[str, Any]] = []
        step = self._asked.step
        rs = self.ruleset
        if not rs.may_have_errors and (step is None or not step.error):
            return errors
        if rs.has_conflicting_tables:
            for meta, matched in zip(rs.tables, self._raw[RAW_MATCHES:], strict=True):
                rows = meta.rows if meta.rows_at is None else meta.rows_at(self._raw[RAW_VALUES])
                conflict = meta.policy.conflict(matched, rows)
                if conflict is not None:
                    errors.append({"table": meta.id, "error": conflict})
        if rs.diagnosis is not None:
            # Arithmetic that failed where it left an evaluated expression unknown.
            errors += rs.diagnosis.errors(self._raw, self._asked)
        if step is not None and step.error is not None:
            errors.append({"tree": step.tree.id, "error": step.error})
        return errors

    def _next_step(self) -> dict[str, Any] | None:
        step = self._asked.step
        if step is None:
            return None
        node = step.node
        out: dict[str, Any] = {"tree": step.tree.id, "node": node.id}
        if node.outcome is not None:
            out["outcome"] = node.outcome
            out["say"] = node.say(self._raw[RAW_VALUES]) if node.say is not None else None
            out["queue"] = node.queue
        elif step.error is not None:
            out["error"] = step.error
            lacking = self._unknown((*step.reads, *node.reads))
            if lacking:
                out["error"] += "; unknown: " + ", ".join(lacking)
        else:
            template = node.ask_template
            out["ask"] = (
                node.ask
                if template is None
                else template.render(self._raw[RAW_VALUES], frozenset(), _unmasked)
            )
            out["answer"] = node.answer
        out["path"] = list(step.path)
        return out

    def _unknown(self, slots: Iterable[int]) -> list[str]:
        values, invalid = self._raw[RAW_VALUES], self._raw[RAW_INVALID]
        paths = self.ruleset.slot_paths
        unknown = {paths[i] for i in slots if values[i] is None}
        if unknown and invalid:
            unknown.difference_update(p for p, _, _ in invalid)
        return sorted(unknown)

    @property
    def missing_fields(self) -> list[str]:
        """Declared fields the evaluated rules read that were absent or null."""
        step = self._asked.step
        needed = self.ruleset.needed[self._asked.trigger]
        if step is not None and step.reads:
            return self._unknown((*needed, *step.reads))
        return self._unknown(needed)

    @property
    def stale_fields(self) -> list[str]:
        """Fields read with a ``max_age`` whose ``as_of`` is older than ``now - max_age``."""
        asked = self._asked
        now = asked.now
        if not asked.as_of or now is None:
            return []
        rs = self.ruleset
        values = self._raw[RAW_VALUES]
        slots = set(rs.needed[asked.trigger])
        if asked.step is not None:
            slots.update(asked.step.reads)
        stale = []
        for i in slots:
            path = rs.slot_paths[i]
            meta = rs.fields.get(path)
            if meta is None or meta.max_age is None or values[i] is None:
                continue
            as_of = as_of_for(asked.as_of, path)
            if as_of is not None and now - as_of > meta.max_age:
                stale.append(path)
        return sorted(stale)

    def _trace(self) -> dict[str, Any]:
        rs = self.ruleset
        model = rs.model
        rules = []
        values, matches = self._raw[RAW_VALUES], self._raw[RAW_MATCHES:]
        step = self._asked.step
        assert self._asked.records is not None
        for section, k, result in self._asked.records:
            name = _SECTIONS[section]
            rule = getattr(model, name)[k]
            reads = rs.rule_reads[name][k]
            rules.append(
                {
                    "section": name,
                    "rule": rule.id,
                    "result": _RESULT[result],
                    "reads": {rs.slot_paths[i]: json_value(values[i]) for i in reads},
                }
            )
        tables = []
        for meta, matched in zip(rs.tables, matches, strict=True):
            rows = meta.policy.rows(matched)
            tables.append({"table": meta.id, "matched_rows": [r + 1 for r in rows]})
        tree = None
        if step is not None:
            tree = {"tree": step.tree.id, "path": list(step.path)}
        return {"rules": rules, "tables": tables, "tree": tree}


def as_of_for(as_of: Mapping[str, Any], path: str) -> datetime | None:
    """The ``as_of`` of the longest prefix of ``path`` that has one."""
    probe = path
    while True:
        if probe in as_of:
            return parse_time(as_of[probe])
        if "." not in probe:
            return None
        probe = probe.rsplit(".", 1)[0]


def plain_decision_class(
    ruleset: RulesetParts, tables: Callable[[Decision], dict[str, Any]]
) -> type[Decision]:
    """The ``Decision`` subclass of one ruleset's plain evaluations.

    Its ``ruleset`` and ``_asked`` (always ``PLAIN``) are class attributes, so that building
    a decision costs one store (``_raw``); ``tables`` is the ruleset's generated function
    itself, with no check of the trigger (a plain evaluation's is ``decision``).
    """
    namespace = {
        "__slots__": (),
        "__module__": __name__,
        "__qualname__": f"Decision[{ruleset.name}]",
        "ruleset": ruleset,
        "_asked": PLAIN,
        "tables": property(tables, doc=Decision.tables.__doc__),
    }
    return type(f"Decision[{ruleset.name}]", (Decision,), namespace)
