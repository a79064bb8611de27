"""``CompiledRuleset``: the immutable result of compiling a document, and its ``evaluate``.

    evaluate(context, answers, now, counters, as_of, trace, tree, trigger)
      │   without trees, generated per ruleset (``use_entry``): a plain call (a context
      │   dict only) runs everything below in that one frame; any other goes to _evaluate
      │
      ├─ _read        generated: inputs → one tuple of values (fields, counters, now,
      │               table outputs), wrong-typed values reported and read as unknown
      ├─ eligibility  generated: ids of the rules that hold (bucketed by an equality test;
      │               when too few to bucket, runs of them guarded by one)
      ├─ escalation   generated: the first rule that holds, in (priority, position) order
      ├─ alerts       generated: the alert rules of the trigger that hold
      ├─ tree walk    per node, a generated function picks the branch
      └─ Decision     holds rule ids, indices and values; builds its JSON shape when asked

``evaluate`` reads no clock and no global state; the generated functions are pure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from engine.decision import Asked, Decision, NextStep, json_value
from engine.errors import EvaluationError
from engine.expr import Type
from engine.runtime import format_value
from engine.times import parse_time

if TYPE_CHECKING:
    from engine.model import AlertRule, Document
    from engine.testing import TestResult

TRIGGER_DECISION = "decision"
# The parameters of ``CompiledRuleset.evaluate``, as the generated entry point spells them.
ENTRY_PARAMS = (
    "context=None, answers=None, now=None, counters=None, trace=False,"
    f" *, as_of=None, tree=None, trigger={TRIGGER_DECISION!r}"
)


@dataclass(frozen=True)
class FieldMeta:
    path: str
    type: Type
    max_age: timedelta | None = None
    classification: str = "internal"


@dataclass(frozen=True)
class TableMeta:
    id: str
    hit: str
    outputs: tuple[str, ...]
    # A table's matches → its outputs by name, or None when a single-hit policy found none.
    outputs_of: Callable[[Any], dict[str, Any] | None]
    position: int


@dataclass(frozen=True)
class Template:
    """A ``message:`` or ``say:`` template with ``{...}`` parts, kept so that a caller can show
    it with some parts masked (what a reader may not see of a customer): the pieces in order,
    each literal text or the fields one part reads, and a generated function of an
    evaluation's values that gives each part's value.

    The rendering the engine does itself (``message``, ``say``) does not go through this: it
    is only for callers that mask.
    """

    pieces: tuple[str | frozenset[str], ...]
    values: Callable[[tuple[Any, ...]], tuple[Any, ...]]
    reads: frozenset[str]  # what every part reads, together

    def render(
        self,
        values: tuple[Any, ...],
        hide: AbstractSet[str] | None,
        mask: Callable[[Any], str | None],
    ) -> str:
        """The text, with each part that reads a field in ``hide`` (every part, when ``hide``
        is None) printed as ``mask`` of its value; an unknown value prints ``?`` either way."""
        parts = iter(self.values(values))
        out = []
        for piece in self.pieces:
            if piece.__class__ is str:
                out.append(piece)
                continue
            value = next(parts)
            if value is not None and (hide is None or not hide.isdisjoint(piece)):
                value = mask(json_value(value))
            out.append(format_value(value))
        return "".join(out)


@dataclass(frozen=True)
class TreeNodeMeta:
    id: str
    ask: str | None
    answer: str | None
    answer_slot: int | None
    gotos: tuple[str, ...]
    branch: Callable[[tuple[Any, ...]], int] | None
    reads: tuple[int, ...]
    outcome: str | None
    say: Callable[[tuple[Any, ...]], str] | None
    queue: str | None
    say_template: Template | None = None  # the ``say`` template's parts, when it has any


@dataclass(frozen=True)
class TreeMeta:
    id: str
    start: str
    nodes: dict[str, TreeNodeMeta]


@dataclass(frozen=True)
class AlertMeta:
    rule: AlertRule
    message: Callable[[tuple[Any, ...]], str]
    template: Template | None = None  # the message template's parts, when it has any


@dataclass(eq=False)
class CompiledRuleset:
    """A compiled document. Immutable once built; safe to evaluate from any thread."""

    name: str
    digest: str
    document: dict[str, Any]
    model: Document
    fields: dict[str, FieldMeta]
    slot_paths: tuple[str, ...]
    field_slots: dict[str, int]
    counters_needed: frozenset[tuple[str, str]]
    decide: dict[str, Callable[..., Any]]
    compile_trace: Callable[[], dict[str, Callable[..., Any]]]
    alert_meta: list[AlertMeta]
    tables: list[TableMeta]
    trees: dict[str, TreeMeta]
    needed: dict[str, tuple[int, ...]]
    rule_reads: dict[str, list[tuple[int, ...]]]
    # decision → {table id: outputs}, new dicts each call; generated, as a loop over tables
    # costs more than the work.
    table_outputs: Callable[[Decision], dict[str, Any]]
    source: str = field(repr=False)
    revision: int | None = None
    # The static parts of the decision JSON, built once per revision (eligibility by rule id).
    eligible_out: dict[str, dict[str, Any]] = field(init=False, repr=False)
    escalation_out: list[dict[str, Any]] = field(init=False, repr=False)
    has_unique_tables: bool = field(init=False, repr=False)
    rule_ids: tuple[tuple[str, ...], ...] = field(init=False, repr=False)
    # trigger → the declared fields its rules and tables read, sorted (for audit records)
    read_paths: dict[str, list[str]] = field(init=False, repr=False)
    # alert rule id → its message template, for those whose message has {...} parts
    alert_templates: dict[str, Template] = field(init=False, repr=False)
    _decide_trace: dict[str, Callable[..., Any]] | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.eligible_out = {
            r.id: {"rule": r.id, "offer": r.offer, "params": r.params or {}, "because": r.because}
            for r in self.model.eligibility
        }
        self.escalation_out = [
            {"rule": r.id, "queue": r.queue, "priority": r.priority, "because": r.because}
            for r in self.model.escalation
        ]
        self.has_unique_tables = any(t.hit == "unique" for t in self.tables)
        self.alert_templates = {
            m.rule.id: m.template for m in self.alert_meta if m.template is not None
        }
        self.rule_ids = tuple(
            tuple(r.id for r in rules)
            for rules in (self.model.eligibility, self.model.escalation, self.model.alerts)
        )
        self.read_paths = {
            trigger: sorted(self.slot_paths[i] for i in slots if self.slot_paths[i] in self.fields)
            for trigger, slots in self.needed.items()
        }
        self._decide_trace = None

    def use_entry(self, entry: Callable[..., Decision]) -> None:
        """Make ``entry``, generated for this ruleset, its ``evaluate`` (see ``evaluate``)."""
        vars(self)["evaluate"] = entry

    @property
    def description(self) -> str | None:
        return self.model.description

    def evaluate(
        self,
        context: Mapping[str, Any] | None = None,
        answers: Mapping[str, Any] | None = None,
        now: datetime | str | None = None,
        counters: Mapping[str, Mapping[str, int]] | None = None,
        trace: bool = False,
        *,
        as_of: Mapping[str, Any] | None = None,
        tree: str | None = None,
        trigger: str = TRIGGER_DECISION,
    ) -> Decision:
        """Evaluate the ruleset on one customer's inputs; pure and thread-safe.

        ``trigger`` other than ``"decision"`` evaluates only the alert rules listening for it
        (``"context_change"`` or ``"event"``).

        A compiled ruleset without trees answers this through an entry point generated with
        its rules (``use_entry``; same signature): the common call, a context dict and nothing
        else, runs the rules in that one frame and builds the decision with one store; every
        other call comes here.
        """
        return self._evaluate(context, answers, now, counters, trace, as_of, tree, trigger)

    def _evaluate(
        self,
        context: Mapping[str, Any] | None,
        answers: Mapping[str, Any] | None,
        now: datetime | str | None,
        counters: Mapping[str, Mapping[str, int]] | None,
        trace: bool,
        as_of: Mapping[str, Any] | None,
        tree: str | None,
        trigger: str,
    ) -> Decision:
        # Exact-class checks first: isinstance() against an ABC costs more than the rules.
        if context is None:
            context = {}
        elif context.__class__ is not dict and not isinstance(context, Mapping):
            raise EvaluationError("the context must be a JSON object")
        if answers is None:
            answers = context.get("answers")
        elif answers.__class__ is not dict and not isinstance(answers, Mapping):
            raise EvaluationError("answers must be a JSON object")
        when = None
        if now is not None:
            when = parse_time(now)
            if when is None:
                raise EvaluationError(f"invalid now {now!r}: expected an RFC 3339 time")
        if (
            counters is not None
            and counters.__class__ is not dict
            and not isinstance(counters, Mapping)
        ):
            raise EvaluationError("counters must map event types to {window: count}")
        decide = self.decide.get(trigger)
        if decide is None:
            raise EvaluationError(
                f"unknown trigger {trigger!r}; expected decision, context_change, event or timer"
            )
        records: list[tuple[int, int, bool | None]] | None = None
        try:
            if trace:
                records = []
                traced = self._decide_trace
                if traced is None:  # compiled on first use; a race compiles it twice, harmlessly
                    traced = self._decide_trace = self.compile_trace()
                raw = traced[trigger](context, answers, counters, when, records)
            else:
                raw = decide(context, answers, counters, when)
            step = self._walk(tree, raw[0]) if self.trees and trigger == "decision" else None
        except (ArithmeticError, ValueError, RecursionError) as exc:
            raise self._failed(exc) from None
        if tree is not None and step is None and tree not in self.trees:
            raise EvaluationError(f"ruleset {self.name!r} has no tree {tree!r}")
        return Decision(self, raw, Asked(step, when, as_of, trigger, records))

    def _failed(self, exc: Exception) -> EvaluationError:
        return EvaluationError(
            f"ruleset {self.name!r} could not be evaluated on these inputs: {exc}"
        )

    def _walk(self, tree_id: str | None, values: tuple[Any, ...]) -> NextStep:
        if tree_id is None:
            tree = next(iter(self.trees.values()))
        else:
            found = self.trees.get(tree_id)
            if found is None:
                raise EvaluationError(f"ruleset {self.name!r} has no tree {tree_id!r}")
            tree = found
        nodes = tree.nodes
        node = nodes[tree.start]
        path: list[str] = []
        reads: tuple[int, ...] = ()
        for _ in range(len(nodes)):
            path.append(node.id)
            if node.outcome is not None or (
                node.answer_slot is not None and values[node.answer_slot] is None
            ):
                return NextStep(tree, node, path, reads, None)
            taken = node.branch(values)  # type: ignore[misc]  # routing nodes have one
            reads += node.reads
            if taken < 0:
                return NextStep(tree, node, path, reads, f"no branch of node {node.id!r} holds")
            node = nodes[node.gotos[taken]]
        raise AssertionError("trees are checked acyclic at compile time")  # pragma: no cover

    def run_tests(
        self, clock: Callable[[], float] | None = None, budget: float | None = None
    ) -> list[TestResult]:
        """Run the document's own tests; one result per test, in document order. Given a
        ``clock``, they share a time budget (``engine.testing.TESTS_BUDGET_SECONDS`` unless
        ``budget`` is given)."""
        from engine.testing import TESTS_BUDGET_SECONDS, run_tests

        return run_tests(self, clock, TESTS_BUDGET_SECONDS if budget is None else budget)
