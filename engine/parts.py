"""The parts of a compiled ruleset: what compiling a document yields besides its generated
functions' behaviour, and what a decision reads of the ruleset that made it.

    RulesetParts   the model, generated functions, slots and the metadata below
      ├─ FieldMeta, TableMeta, AlertMeta
      ├─ TreeMeta ── TreeNodeMeta
      ├─ Template  a message or ``say`` with its ``{...}`` parts, for callers that mask
      └─ Logic     the checked IR of every rule's condition and table input, for analysis

``ruleset.CompiledRuleset`` adds evaluation to ``RulesetParts``; ``decision.Decision`` reads
``RulesetParts``. Both import this module and neither imports the other's dependents back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from engine.errors import Problem
from engine.expr import Node, Type
from engine.hitpolicies import HitPolicy
from engine.runtime import format_value
from engine.times import format_time

if TYPE_CHECKING:
    from engine.diagnose import Diagnosis
    from engine.model import AlertRule, Document, FieldSpec
    from engine.tables import Test


def json_value(value: Any) -> Any:
    """A value read during evaluation, as JSON can carry it."""
    if isinstance(value, datetime):
        return format_time(value)
    return value


@dataclass(frozen=True)
class FieldMeta:
    path: str
    type: Type
    max_age: timedelta | None = None
    classification: str = "internal"


@dataclass(frozen=True)
class TableMeta:
    id: str
    policy: HitPolicy
    outputs: tuple[str, ...]
    # A table's matches → its outputs by name, or None when a single-hit policy found none;
    # for a table with computed cells, its matches and the evaluation's values ``V``.
    outputs_of: Callable[..., dict[str, Any] | None]
    position: int
    # Each row's output values (what ``any`` compares); None where a cell is computed.
    rows: tuple[tuple[Any, ...], ...] = ()
    # For a table with computed cells: an evaluation's values → its rows as that evaluation
    # gives them (``hitpolicies.RowsAt``); None for a table of literal outputs.
    rows_at: Callable[[tuple[Any, ...]], Sequence[tuple[Any, ...]]] | None = None


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
class ParamTemplate:
    """An offer parameter written as a template: where it sits in ``params`` and its text.
    A template that is one ``{...}`` part and nothing else (``"{tables.credit.amount}"``)
    gives that part's value, a number staying a number; any other gives the rendered text."""

    path: tuple[str | int, ...]
    template: Template
    native: bool

    def value(
        self,
        values: tuple[Any, ...],
        hide: AbstractSet[str] | None,
        mask: Callable[[Any], str | None],
    ) -> Any:
        template = self.template
        if not self.native:
            return template.render(values, hide, mask)
        (value,) = template.values(values)
        value = json_value(value)
        if value is not None and (hide is None or not hide.isdisjoint(template.reads)):
            return mask(value)
        return value


def fill_params(
    params: dict[str, Any],
    templates: tuple[ParamTemplate, ...],
    values: tuple[Any, ...],
    hide: AbstractSet[str] | None = frozenset(),
    mask: Callable[[Any], str | None] = lambda value: None,
) -> dict[str, Any]:
    """An offer's parameters with each templated one filled in on an evaluation's values; a
    new structure (what holds no template is shared with ``params``)."""
    filled = dict(params)
    for param in templates:
        *parents, last = param.path
        target: Any = filled
        for step in parents:  # copy the containers on the way down
            inner = target[step]
            inner = dict(inner) if isinstance(inner, dict) else list(inner)
            target[step] = inner
            target = inner
        target[last] = param.value(values, hide, mask)
    return filled


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
    ask_template: Template | None = None  # the question, when it is a template


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


@dataclass(frozen=True)
class Logic:
    """The checked IR the generated code was written from, kept for what reads a ruleset's
    logic rather than running it (``engine.counterfactuals``): each rule's ``when`` by
    section, in document order, each table's inputs with the unary tests of their column,
    row by row, and the ``{...}`` parts of each table's computed output cells (for the tables
    that have any). Evaluation never reads it."""

    conditions: dict[str, tuple[Node, ...]] = field(default_factory=dict)
    table_inputs: dict[str, tuple[tuple[Node, tuple[Test, ...]], ...]] = field(default_factory=dict)
    table_cells: dict[str, tuple[Node, ...]] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class RulesetParts:
    """What a compiled document holds: its model, the generated functions and the metadata
    of its fields, tables, trees and alerts. ``CompiledRuleset`` adds evaluation; a
    ``Decision`` reads these parts of the ruleset that made it."""

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
    table_outputs: Callable[[Any], dict[str, Any]]
    source: str = field(repr=False)
    revision: int | None = None
    # eligibility rule id → its templated offer parameters
    param_templates: dict[str, tuple[ParamTemplate, ...]] = field(default_factory=dict)
    logic: Logic = field(default_factory=Logic, repr=False)
    # What the analysis found that refuses nothing (engine.analysis), located, in document
    # order.
    warnings: tuple[Problem, ...] = field(default=(), repr=False)
    # Why the document's tests guard nothing (no tests, or one that checks nothing): warnings
    # too, which a deploy refuses unless the author allows them.
    untested: tuple[Problem, ...] = field(default=(), repr=False)
    # What explains arithmetic that failed, for the decision's errors; None when none can fail.
    diagnosis: Diagnosis | None = field(default=None, repr=False)
    # The static parts of the decision JSON, built once per revision (eligibility by rule id).
    eligible_out: dict[str, dict[str, Any]] = field(init=False, repr=False)
    escalation_out: list[dict[str, Any]] = field(init=False, repr=False)
    has_conflicting_tables: bool = field(init=False, repr=False)
    # Whether a decision can have errors other than a tree's: tables whose matches can break
    # their policy, or arithmetic that can fail (what Decision._errors looks for).
    may_have_errors: bool = field(init=False, repr=False)
    rule_ids: tuple[tuple[str, ...], ...] = field(init=False, repr=False)
    # trigger → the declared fields its rules and tables read, sorted (for audit records)
    read_paths: dict[str, list[str]] = field(init=False, repr=False)
    # alert rule id → its message template, for those whose message has {...} parts
    alert_templates: dict[str, Template] = field(init=False, repr=False)
    # field path → what a person calls it: its ``description``, or the path without one
    field_labels: dict[str, str] = field(init=False, repr=False)
    # a tree question's answer field → what a desktop needs to ask for it: ``answer_type``,
    # and ``answer_enum`` (the allowed values, in document order) for a string with an enum
    answer_shapes: dict[str, dict[str, Any]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        model = self.model
        derived = {
            "eligible_out": {
                r.id: {
                    "rule": r.id,
                    "offer": r.offer,
                    "params": r.params or {},
                    "because": r.because,
                }
                for r in model.eligibility
            },
            "escalation_out": [
                {"rule": r.id, "queue": r.queue, "priority": r.priority, "because": r.because}
                for r in model.escalation
            ],
            "has_conflicting_tables": any(t.policy.conflicts for t in self.tables),
            "may_have_errors": self.diagnosis is not None
            or any(t.policy.conflicts for t in self.tables),
            "alert_templates": {
                m.rule.id: m.template for m in self.alert_meta if m.template is not None
            },
            "rule_ids": tuple(
                tuple(r.id for r in rules)
                for rules in (model.eligibility, model.escalation, model.alerts)
            ),
            "read_paths": {
                trigger: sorted(
                    self.slot_paths[i] for i in slots if self.slot_paths[i] in self.fields
                )
                for trigger, slots in self.needed.items()
            },
            "field_labels": {
                path: path if isinstance(spec, str) else (spec.description or path).strip()
                for path, spec in model.context.items()
            },
            "answer_shapes": {
                node.answer: _answer_shape(model.context[node.answer])
                for tree in model.trees
                for node in tree.nodes.values()
                if node.answer is not None and node.answer in model.context
            },
        }
        for name, value in derived.items():  # frozen: derived parts are set once, here
            object.__setattr__(self, name, value)


def _answer_shape(spec: str | FieldSpec) -> dict[str, Any]:
    """What a tree question's answer field asks for: its type, and its enum when it has one."""
    if isinstance(spec, str):
        return {"answer_type": spec}
    shape: dict[str, Any] = {"answer_type": spec.type}
    if spec.enum is not None:
        shape["answer_enum"] = list(spec.enum)
    return shape
