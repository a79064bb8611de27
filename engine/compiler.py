"""``compile_ruleset``: a ruleset document in, an immutable ``CompiledRuleset`` out.

The compiler is an ordered list of named stages over one ``_Build``; each stage reads what the
ones before it produced and records problems instead of stopping at the first:

    parse     text → plain data + positions            (engine.source)
    shape     keys and value kinds                     (engine.model)
    fields    context declarations → types and slots
    tables    output types, input expressions, cells, evaluation order (before rules: rules
              may read tables.<id>.<output>)
    rules     eligibility, escalation and alert conditions; message templates
    trees     nodes, branches, links, cycles, reachability
    tests     the document's tests refer to things that exist
    generate  Python source from the checked IR, compiled once (engine.codegen)

Problems from ``tables`` to ``tests`` are gathered together; ``generate`` runs only on a
document with none.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from engine.codegen import Emitter, FunctionWriter, Namespace, null_safe_when_true, with_globals
from engine.decision import RAW_MATCHES, plain_decision_class
from engine.diagnose import Diagnosis, plan_diagnosis
from engine.durations import parse_duration
from engine.errors import Problem, RulesetError
from engine.expr import (
    BOOLEAN,
    RESERVED_NAMES,
    SCALAR_TYPES,
    STRING,
    Arith,
    BoolOp,
    Call,
    Checked,
    Compare,
    Const,
    Environment,
    ExpressionError,
    FieldInfo,
    ListConst,
    Missing,
    Neg,
    Node,
    Not,
    Quantifier,
    Slot,
    Type,
    check_expression,
    list_of,
)
from engine.model import (
    MIN_EVERY_SECONDS,
    TRIGGERS,
    Document,
    Table,
    Tree,
    TreeNode,
    parse_document,
)
from engine.parts import AlertMeta, FieldMeta, TableMeta, Template, TreeMeta, TreeNodeMeta
from engine.ruleset import ENTRY_PARAMS, TRIGGER_DECISION, CompiledRuleset
from engine.runtime import item_filter
from engine.source import Locator, Path, load_document
from engine.tables import (
    INDEX_MIN_ROWS,
    AnyTest,
    CellError,
    Test,
    check_test,
    emit_test,
    equality_values,
    interval_index,
    output_builder,
    output_type,
    output_value,
    parse_cell,
    read_type,
    resolver,
)
from engine.times import parse_time

_SEGMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
# A section's rules are bucketed from this many; a bucket's rules are split again from 16.
INDEX_MIN_RULES_OUTER = 8
INDEX_MIN_RULES = 16
INDEX_MIN_BUCKET = 4
# Rules in a row that test one field for equality share a membership test from this many.
GUARD_MIN_RUN = 2
# Interval tables search the floats just above their points when every point is below this.
_EXACT_BELOW = 2.0**52


def compile_ruleset(
    source: str | bytes | Mapping[str, Any], *, filename: str | None = None
) -> CompiledRuleset:
    """Compile a ruleset document (YAML/JSON text or a mapping); raise RulesetError."""
    if not isinstance(source, str | bytes | Mapping):
        message = f"expected YAML or JSON text or a mapping, got {type(source).__name__}"  # type: ignore[unreachable]
        raise RulesetError([Problem(message, file=filename)])
    build = _Build(filename)
    build.source = source
    for name, stage in _STAGES:
        before = len(build.problems)
        stage(build)
        if (len(build.problems) > before and name in _STOP_AFTER) or (
            build.problems and (name == "tests" or build.doc is None)
        ):
            raise RulesetError(build.problems)
    assert build.compiled is not None
    return build.compiled


@dataclass
class _Checked:
    """A checked expression together with where it came from."""

    path: Path
    node: Node
    reads: frozenset[str]


@dataclass
class _TablePlan:
    model: Table
    position: int
    inputs: list[_Checked] = field(default_factory=list)
    input_types: list[Type] = field(default_factory=list)
    cells: list[list[Test]] = field(default_factory=list)
    outputs: list[tuple[Any, ...]] = field(default_factory=list)
    output_names: list[str] = field(default_factory=list)
    ranks: list[tuple[int, ...]] | None = None
    depends_on: set[str] = field(default_factory=set)


@dataclass
class _TreePlan:
    model: Tree
    position: int
    branches: dict[str, list[_Checked | None]] = field(default_factory=dict)
    says: dict[str, list[str | _Checked]] = field(default_factory=dict)


class _Build:
    """Everything the stages share."""

    def __init__(self, filename: str | None) -> None:
        self.filename = filename
        self.problems: list[Problem] = []
        self.source: Any = None
        self.data: Any = None
        self.locator = Locator(file=filename)
        self.doc: Document | None = None
        self.fields: dict[str, FieldMeta] = {}
        self.env = Environment(fields={})
        self.tables: list[_TablePlan] = []
        self.table_order: list[_TablePlan] = []
        self.eligibility: list[_Checked] = []
        self.escalation: list[_Checked] = []
        self.alerts: list[_Checked] = []
        self.messages: list[list[str | _Checked]] = []
        self.trees: list[_TreePlan] = []
        self.compiled: CompiledRuleset | None = None

    def problem(self, path: Path, message: str) -> None:
        self.problems.append(self.locator.problem(path, message))

    def expression(
        self, path: Path, text: str | bool, *, boolean: bool, offset: int = 0
    ) -> _Checked | None:
        """Check the expression at ``path``; record a located problem and return None on error."""
        if isinstance(text, bool):
            return _Checked(path, Const(BOOLEAN, False, text), frozenset())
        try:
            checked: Checked = check_expression(text, self.env, expect=BOOLEAN if boolean else None)
        except ExpressionError as exc:
            self.problems.append(
                self.locator.problem_in_text(path, exc.offset + offset, exc.message)
            )
            return None
        return _Checked(path, checked.node, checked.reads)

    def template(self, path: Path, text: str) -> list[str | _Checked] | None:
        """Split ``text`` into literal parts and checked ``{expression}`` parts."""
        parts: list[str | _Checked] = []
        literal: list[str] = []
        i, n, ok = 0, len(text), True
        while i < n:
            ch = text[i]
            if ch in "{}" and text.startswith(ch * 2, i):
                literal.append(ch)
                i += 2
                continue
            if ch == "}":
                self.problems.append(
                    self.locator.problem_in_text(
                        path, i, "unmatched '}' in template; write '}}' for a brace"
                    )
                )
                return None
            if ch == "{":
                end = text.find("}", i + 1)
                if end < 0:
                    self.problems.append(
                        self.locator.problem_in_text(
                            path, i, "unclosed '{' in template; write '{{' for a brace"
                        )
                    )
                    return None
                inner = text[i + 1 : end]
                checked = self.expression(path, inner, boolean=False, offset=i + 1)
                if checked is None:
                    ok = False
                else:
                    if literal:
                        parts.append("".join(literal))
                        literal = []
                    parts.append(checked)
                i = end + 1
                continue
            literal.append(ch)
            i += 1
        if literal:
            parts.append("".join(literal))
        return parts if ok else None


# ---------------------------------------------------------------------------------------------
# Stages


def _parse(b: _Build) -> None:
    source = b.source
    if isinstance(source, Mapping):
        b.data = _plain(source)
        return
    try:
        b.data, b.locator = load_document(source, b.filename)
    except RulesetError as exc:
        b.problems.extend(exc.errors)


def _plain(value: Any) -> Any:
    """A deep copy of a mapping given by a caller, with keys as strings."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _shape(b: _Build) -> None:
    doc, problems = parse_document(b.data, b.locator)
    b.problems.extend(problems)
    b.doc = doc
    if doc is None:
        return
    for section in ("eligibility", "escalation", "alerts", "tables", "trees"):
        seen: dict[str, int] = {}
        for i, item in enumerate(getattr(doc, section)):
            if item.id in seen:
                b.problem(
                    (section, i, "id"),
                    f"duplicate {section} id {item.id!r} (first "
                    f"used at {section}[{seen[item.id]}])",
                )
            else:
                seen[item.id] = i
    names: dict[str, int] = {}
    for i, test in enumerate(doc.tests):
        if test.name in names:
            b.problem(("tests", i, "name"), f"duplicate test name {test.name!r}")
        names.setdefault(test.name, i)


def _fields(b: _Build) -> None:
    assert b.doc is not None
    declared = b.doc.context
    for path_text, spec in declared.items():
        where: Path = ("context", path_text)
        segments = path_text.split(".")
        bad = [
            s
            for s in segments
            if not _SEGMENT.match(s) or s.startswith("__") or s in RESERVED_NAMES
        ]
        if len(segments) < 2 or bad:
            b.problem(
                (*where, "<key>"),
                f"invalid field name {path_text!r}: expected a dotted "
                "path of identifiers such as customer.tier",
            )
            continue
        if segments[0] == "tables":
            b.problem((*where, "<key>"), "'tables' is reserved for tables.<id>.<output>")
            continue
        kind = spec if isinstance(spec, str) else spec.type
        if kind not in ("string", "integer", "number", "boolean", "datetime", "list"):
            b.problem(
                where,
                f"unknown type {kind!r}; expected string, integer, number, "
                "boolean, datetime or list",
            )
            continue
        meta = _field_meta(b, where, path_text, kind, spec)
        if meta is not None:
            b.fields[path_text] = meta
    for path_text in declared:
        for other in declared:
            if other.startswith(path_text + "."):
                b.problem(
                    ("context", other, "<key>"),
                    f"{other!r} is declared inside {path_text!r}, which is itself a field",
                )
    b.env.fields = {p: FieldInfo(p, m.type) for p, m in b.fields.items()}


def _field_meta(b: _Build, where: Path, path: str, kind: str, spec: Any) -> FieldMeta | None:
    enum = max_age = items = None
    classification = "internal"
    if not isinstance(spec, str):
        classification = spec.classification
        if spec.enum is not None:
            if kind != "string":
                b.problem((*where, "enum"), "enum applies only to string fields")
                return None
            if not spec.enum:
                b.problem((*where, "enum"), "enum must list at least one value")
                return None
            enum = frozenset(spec.enum)
        if spec.max_age is not None:
            try:
                max_age = parse_duration(spec.max_age)
            except ValueError as exc:
                b.problem((*where, "max_age"), str(exc))
                return None
        if spec.items is not None:
            if kind != "list":
                b.problem((*where, "items"), "items applies only to list fields")
                return None
            items = spec.items
    if kind == "list":
        item_type = _item_type(b, where, items)
        if item_type is False:
            return None
        field_type = list_of(item_type if isinstance(item_type, Type) else None)
    else:
        field_type = Type(kind, enum=enum)
    return FieldMeta(path=path, type=field_type, max_age=max_age, classification=classification)


def _item_type(b: _Build, where: Path, items: Any) -> Type | bool | None:
    if items is None:
        return None
    if isinstance(items, str):
        if items not in SCALAR_TYPES:
            b.problem(
                (*where, "items"),
                f"unknown item type {items!r}; expected string, "
                "integer, number, boolean or datetime, or a mapping "
                "of attribute → type",
            )
            return False
        return SCALAR_TYPES[items]
    attrs = []
    for name, kind in items.items():
        if not _SEGMENT.match(name) or kind not in SCALAR_TYPES:
            b.problem(
                (*where, "items", name),
                f"invalid item attribute {name}: {kind!r}; expected a name and a scalar type",
            )
            return False
        attrs.append((name, SCALAR_TYPES[kind]))
    return Type("object", attrs=tuple(attrs))


def _tables(b: _Build) -> None:
    assert b.doc is not None
    for position, table in enumerate(b.doc.tables):
        plan = _TablePlan(table, position)
        b.tables.append(plan)
        where: Path = ("tables", position)
        outputs = [o if isinstance(o, str) else o.name for o in table.outputs]
        plan.output_names = outputs
        if len(set(outputs)) != len(outputs):
            b.problem((*where, "outputs"), "output names must be unique")
        width = len(table.inputs) + len(outputs)
        for r, row in enumerate(table.rows):
            if len(row) != width:
                b.problem(
                    (*where, "rows", r),
                    f"row {r + 1} has {len(row)} cells; expected {width} "
                    f"({_plural(len(table.inputs), 'input')} + {_plural(len(outputs), 'output')})",
                )
        if table.aggregate is not None and table.hit != "collect":
            b.problem((*where, "aggregate"), "aggregate applies only to hit: collect")
        if any(len(row) != width for row in table.rows):
            continue
        plan.outputs = [
            tuple(
                _output_cell(b, (*where, "rows", r, len(table.inputs) + c), cell)
                for c, cell in enumerate(row[len(table.inputs) :])
            )
            for r, row in enumerate(table.rows)
        ]
        types = {}
        for c, name in enumerate(outputs):
            column = [row[c] for row in plan.outputs]
            column_type = output_type(column)
            if column_type is None:
                b.problem(
                    (*where, "outputs", c),
                    f"output {name!r} mixes value types; each output column must hold one type"
                    if any(v is not None for v in column)
                    else f"output {name!r} is null in every row; give it at least one value",
                )
                continue
            if table.aggregate in ("sum", "min", "max") and not column_type.numeric:
                b.problem(
                    (*where, "aggregate"),
                    f"aggregate {table.aggregate} needs numbers, "
                    f"but output {name!r} holds {column_type}",
                )
            types[name] = read_type(table.hit, table.aggregate, column_type)
        plan.ranks = _priority_ranks(b, plan)
        b.env.table_outputs[table.id] = types
    for plan in b.tables:
        _table_inputs(b, plan)
    b.table_order = _table_order(b)


def _output_cell(b: _Build, path: Path, cell: Any) -> Any:
    """An output cell's value (``'"new"'`` is ``new``); a problem, and the cell, if refused."""
    try:
        return output_value(cell)
    except CellError as exc:
        b.problem(path, str(exc))
        return cell


def _priority_ranks(b: _Build, plan: _TablePlan) -> list[tuple[int, ...]] | None:
    table = plan.model
    where = ("tables", plan.position, "outputs")
    value_lists = [
        None
        if isinstance(o, str) or o.values is None
        else [_output_cell(b, (*where, c, "values", k), v) for k, v in enumerate(o.values)]
        for c, o in enumerate(table.outputs)
    ]
    if table.hit != "priority":
        return None
    if all(v is None for v in value_lists):
        b.problem(
            ("tables", plan.position, "outputs"),
            "hit: priority needs the outputs' values in priority order: "
            "outputs: [{name: action, values: [block, review, allow]}]",
        )
        return None
    ranks = []
    for r, row in enumerate(plan.outputs):
        rank = []
        for c, values in enumerate(value_lists):
            if values is None:
                continue
            if row[c] not in values:
                b.problem(
                    ("tables", plan.position, "rows", r, len(table.inputs) + c),
                    f"{row[c]!r} is not among output {plan.output_names[c]!r}'s values",
                )
                continue
            rank.append(values.index(row[c]))
        ranks.append(tuple(rank))
    return ranks


def _table_inputs(b: _Build, plan: _TablePlan) -> None:
    table = plan.model
    where: Path = ("tables", plan.position)
    for i, text in enumerate(table.inputs):
        checked = b.expression((*where, "inputs", i), text, boolean=False)
        if checked is None:
            plan.inputs.append(_Checked((), Const(STRING, False, ""), frozenset()))
            plan.input_types.append(STRING)
            continue
        in_type = checked.node.type
        if in_type.kind not in ("string", "integer", "number", "boolean"):
            b.problem(
                (*where, "inputs", i),
                f"a table input must be a string, number or boolean; {text!r} is a {in_type}",
            )
        plan.inputs.append(checked)
        plan.input_types.append(in_type)
        plan.depends_on |= {p.split(".")[1] for p in checked.reads if p.startswith("tables.")}
    if not plan.outputs and table.rows:
        return
    for r, row in enumerate(table.rows):
        tests = []
        for c in range(len(table.inputs)):
            try:
                test = parse_cell(row[c])
                node = plan.inputs[c].node
                enum = node.type.enum if isinstance(node, Slot) else None
                check_test(test, plan.input_types[c], enum)
            except CellError as exc:
                b.problem((*where, "rows", r, c), f"row {r + 1}, column {c + 1}: {exc}")
                continue
            tests.append(test)
        plan.cells.append(tests)


def _table_order(b: _Build) -> list[_TablePlan]:
    by_id = {p.model.id: p for p in b.tables}
    order: list[_TablePlan] = []
    state: dict[str, int] = {}

    def visit(plan: _TablePlan, chain: list[str]) -> None:
        tid = plan.model.id
        if state.get(tid) == 2:
            return
        if state.get(tid) == 1:
            cycle = " → ".join([*chain[chain.index(tid) :], tid])
            b.problem(
                ("tables", plan.position, "inputs"), f"tables read each other in a cycle: {cycle}"
            )
            return
        state[tid] = 1
        for dep in sorted(plan.depends_on):
            if dep in by_id:
                visit(by_id[dep], [*chain, tid])
        state[tid] = 2
        order.append(plan)

    for plan in b.tables:
        visit(plan, [])
    return order


def _rules(b: _Build) -> None:  # noqa: PLR0912 -- a compile stage: one check after another
    assert b.doc is not None
    sections: list[tuple[str, list[Any], list[_Checked]]] = [
        ("eligibility", b.doc.eligibility, b.eligibility),
        ("escalation", b.doc.escalation, b.escalation),
        ("alerts", b.doc.alerts, b.alerts),
    ]
    for section, rules, out in sections:
        for i, rule in enumerate(rules):
            checked = b.expression((section, i, "when"), rule.when, boolean=True)
            if checked is not None:
                out.append(checked)
    policy = b.doc.policy
    for i, alert in enumerate(b.doc.alerts):
        if len(set(alert.on)) != len(alert.on):
            b.problem(("alerts", i, "on"), "'on' lists a trigger twice")
        if ("timer" in alert.on) != (alert.every is not None):
            b.problem(
                ("alerts", i, "every" if alert.every is not None else "on"),
                "a rule runs on a timer with both on: [timer] and every: (such as every: 30s)",
            )
        elif alert.every is not None:
            try:
                period = parse_duration(alert.every)
            except ValueError as exc:
                b.problem(("alerts", i, "every"), str(exc))
            else:
                if period.total_seconds() < MIN_EVERY_SECONDS:
                    b.problem(("alerts", i, "every"), "every must be at least 1s")
        if alert.ack_within is not None:
            if not alert.require_ack:
                b.problem(("alerts", i, "ack_within"), "ack_within applies only with require_ack")
            _duration(b, ("alerts", i, "ack_within"), alert.ack_within)
        elif alert.require_ack:
            b.problem(("alerts", i, "require_ack"), "require_ack needs ack_within, such as 2m")
        if alert.require_ack and (policy is None or policy.supervisor is None):
            b.problem(
                ("alerts", i, "require_ack"),
                "require_ack needs policy.supervisor: whose stream an unacknowledged alert "
                "is re-raised to",
            )
        parts = b.template(("alerts", i, "message"), alert.message)
        b.messages.append(parts or [])


def _policy(b: _Build) -> None:
    """The contact policy: max_alerts and per go together; durations are durations."""
    assert b.doc is not None
    policy = b.doc.policy
    if policy is None:
        return
    if (policy.max_alerts is None) != (policy.per is None):
        b.problem(("policy",), "max_alerts and per go together: at most max_alerts per window")
    if policy.per is not None:
        _duration(b, ("policy", "per"), policy.per)
    if policy.quiet_after_dismiss is not None:
        _duration(b, ("policy", "quiet_after_dismiss"), policy.quiet_after_dismiss)


def _duration(b: _Build, where: tuple[str | int, ...], text: str) -> None:
    try:
        parse_duration(text)
    except ValueError as exc:
        b.problem(where, str(exc))


def _trees(b: _Build) -> None:
    assert b.doc is not None
    for position, tree in enumerate(b.doc.trees):
        plan = _TreePlan(tree, position)
        b.trees.append(plan)
        where: Path = ("trees", position)
        nodes = tree.nodes
        if tree.start not in nodes:
            b.problem((*where, "start"), f"start node {tree.start!r} is not among the nodes")
            continue
        for node_id, node in nodes.items():
            _tree_node(b, plan, (*where, "nodes", node_id), node_id, node)
        _tree_links(b, plan)


def _tree_node(b: _Build, plan: _TreePlan, where: Path, node_id: str, node: TreeNode) -> None:  # noqa: PLR0912 -- a compile stage: one check after another
    nodes = plan.model.nodes
    if (node.next is None) == (node.outcome is None):
        b.problem(
            where,
            f"node {node_id!r} must have either 'next' (to route) or 'outcome' "
            "(to end), not both or neither",
        )
        return
    if node.outcome is not None:
        if node.ask is not None or node.answer is not None:
            b.problem(where, f"outcome node {node_id!r} cannot ask a question")
        if node.say is not None:
            parts = b.template((*where, "say"), node.say)
            plan.says[node_id] = parts or []
        return
    if node.queue is not None or node.say is not None:
        b.problem(where, f"'queue' and 'say' belong on outcome nodes, not on {node_id!r}")
    if (node.ask is None) != (node.answer is None):
        b.problem(where, f"node {node_id!r}: 'ask' and 'answer' go together")
    if node.answer is not None:
        if node.answer.startswith("answers.") and node.answer in b.fields:
            # The walk stops at this node while the answer is unknown, so it is always read.
            b.env.slot(node.answer, b.fields[node.answer].type)
        else:
            b.problem(
                (*where, "answer"), f"answer {node.answer!r} must be a declared answers.* field"
            )
    assert node.next is not None
    if not node.next:
        b.problem((*where, "next"), f"node {node_id!r} has an empty 'next' list")
    branches: list[_Checked | None] = []
    unconditional_at = None
    for k, branch in enumerate(node.next):
        if unconditional_at is not None:
            b.problem(
                (*where, "next", k),
                f"branch {k + 1} can never be taken: branch "
                f"{unconditional_at + 1} has no condition",
            )
        if branch.goto not in nodes:
            close = [n for n in nodes if n.startswith(branch.goto[:3])]
            hint = f"; did you mean {close[0]!r}?" if close else ""
            b.problem(
                (*where, "next", k, "goto"),
                f"goto {branch.goto!r} names no node of tree {plan.model.id!r}{hint}",
            )
        if branch.when is None:
            unconditional_at = k if unconditional_at is None else unconditional_at
            branches.append(None)
        else:
            branches.append(b.expression((*where, "next", k, "when"), branch.when, boolean=True))
    plan.branches[node_id] = branches


def _tree_links(b: _Build, plan: _TreePlan) -> None:
    tree = plan.model
    edges = {
        nid: [br.goto for br in (n.next or []) if br.goto in tree.nodes]
        for nid, n in tree.nodes.items()
    }
    where: Path = ("trees", plan.position)
    state: dict[str, int] = {}
    reported = False

    def visit(nid: str, chain: list[str]) -> None:
        nonlocal reported
        state[nid] = 1
        for nxt in edges[nid]:
            if state.get(nxt) == 1 and not reported:
                cycle = " → ".join([*chain[chain.index(nxt) :], nxt])
                b.problem((*where, "nodes", nid), f"tree {tree.id!r} has a cycle: {cycle}")
                reported = True
            elif nxt not in state:
                visit(nxt, [*chain, nxt])
        state[nid] = 2

    visit(tree.start, [tree.start])
    for nid in tree.nodes:
        if nid not in state:
            b.problem(
                (*where, "nodes", nid),
                f"node {nid!r} cannot be reached from start node {tree.start!r}",
            )


def _tests(b: _Build) -> None:  # noqa: PLR0912 -- a compile stage: one check after another
    assert b.doc is not None
    doc = b.doc
    rule_ids = {
        "eligible": {r.id for r in doc.eligibility},
        "alerts": {r.id for r in doc.alerts},
    }
    escalation_ids = {r.id for r in doc.escalation}
    tables = {p.model.id: set(p.output_names) for p in b.tables}
    trees = {t.id for t in doc.trees}
    for i, test in enumerate(doc.tests):
        where: Path = ("tests", i)
        expect = test.expect
        for key, known in rule_ids.items():
            for rid in getattr(expect, key) or []:
                if rid not in known:
                    kind = "eligibility" if key == "eligible" else "alert"
                    b.problem(
                        (*where, "expect", key),
                        f"test {test.name!r} expects unknown {kind} rule {rid!r}",
                    )
        if expect.escalation is not None and expect.escalation not in escalation_ids:
            b.problem(
                (*where, "expect", "escalation"),
                f"test {test.name!r} expects unknown escalation rule {expect.escalation!r}",
            )
        for tid, outputs in (expect.tables or {}).items():
            if tid not in tables:
                b.problem(
                    (*where, "expect", "tables"),
                    f"test {test.name!r} expects unknown table {tid!r}",
                )
            elif outputs is not None:
                for name in outputs:
                    if name not in tables[tid]:
                        b.problem(
                            (*where, "expect", "tables", tid),
                            f"table {tid!r} has no output {name!r}",
                        )
        for key in ("missing_fields", "stale_fields", "invalid_fields"):
            for path in getattr(expect, key) or []:
                if path not in b.fields:
                    b.problem((*where, "expect", key), f"{path!r} is not a declared field")
        if test.tree is not None and test.tree not in trees:
            b.problem((*where, "tree"), f"unknown tree {test.tree!r}")
        if expect.next_step is not None and not trees:
            b.problem((*where, "expect", "next_step"), "the document has no trees")
        if test.now is not None and _parse_time(test.now) is None:
            b.problem(
                (*where, "now"),
                f"invalid time {test.now!r}: expected RFC 3339, such as 2026-11-22T10:00:00Z",
            )
        for key, value in (test.as_of or {}).items():
            if _parse_time(value) is None:
                b.problem((*where, "as_of", key), f"invalid time {value!r}: expected RFC 3339")


def _parse_time(text: str) -> Any:
    return parse_time(text)


def _generate(b: _Build) -> None:
    assert b.doc is not None
    gen = _Generator(b)
    b.compiled = gen.build()


_STAGES: list[tuple[str, Callable[[_Build], None]]] = [
    ("parse", _parse),
    ("shape", _shape),
    ("fields", _fields),
    ("tables", _tables),
    ("rules", _rules),
    ("policy", _policy),
    ("trees", _trees),
    ("tests", _tests),
    ("generate", _generate),
]
# A stage in this set that finds problems stops the compile: what follows needs its output
# (an undeclared field would be reported again by every rule reading it). "shape" stops only
# when it produced no document; a duplicate id does not keep the rules from being checked.
# Everything found is reported before code generation.
_STOP_AFTER = {"parse", "fields"}


# ---------------------------------------------------------------------------------------------
# Code generation


class _Generator:
    """Builds the generated module for one ruleset and wraps it in a CompiledRuleset."""

    def __init__(self, b: _Build) -> None:
        self.b = b
        self.ns = Namespace()
        self.sources: list[str] = []
        self.slot_count = len(b.env.slots)
        # Index dicts are bound by name before the functions they point to exist.
        self.deferred_index: list[tuple[str, dict[Any, str]]] = []
        self.table_names: dict[int, tuple[str, str]] = {}
        # Indexed table function → (index dict, indexed column, function for other values).
        self.table_dispatch: dict[str, tuple[str, int, str]] = {}
        self.table_outputs_of: dict[int, Callable[[Any], dict[str, Any] | None]] = {}
        self.collected: dict[tuple[str, bool], list[str]] = {}
        self._names = itertools.count()

    def fn_name(self, prefix: str) -> str:
        """A fresh name: nested buckets are named before their parent is added."""
        return f"{prefix}_{next(self._names)}"

    def add(self, source: str) -> None:
        self.sources.append(source)

    # -- the decide function: inputs → slot values → tables → sections ----------------------

    def decide_function(self, name: str, trigger: str, trace: bool, entry: bool = False) -> str:
        """One function per trigger: read every input once, evaluate tables, then the rules.

        Returns ``(values, eligible, alerts, escalation, invalid, *table_matches)``: the raw
        tuple a ``Decision`` holds. ``eligible`` lists rule ids, ``alerts`` rule indices; the
        tuple is flat, as one tuple costs less than two.

        With ``entry`` it is instead ``CompiledRuleset.evaluate`` itself, for a ruleset
        without trees (see ``CompiledRuleset.entry``): the same signature; any call but
        the plain one (a context dict, nothing else) goes to ``_evaluate``, and the plain one
        runs the rules in this frame and returns the ``Decision``, an instance of the
        ruleset's own subclass ``_D`` that needs only the raw tuple stored.
        """
        b = self.b
        assert b.doc is not None
        if entry:
            w = FunctionWriter(f"def {name}({ENTRY_PARAMS}):")
            w.line(
                "if context.__class__ is not _dict or answers is not None or now is not None"
                " or counters is not None or trace is not False or as_of is not None"
                f" or tree is not None or trigger != {TRIGGER_DECISION!r}:"
            )
            w.indent()
            w.line("return _evaluate(context, answers, now, counters, trace, as_of, tree, trigger)")
            w.dedent()
            w.line("ctx = context")
            # What the prelude reads besides the context, none of it given in a plain call.
            paths = b.env.slots
            if any(p.startswith("answers.") for p in paths):
                w.line("ans = None")
            if b.env.counters:
                w.line("cnt = None")
            if "now()" in paths:
                w.line("now_ = None")
            # Free in 3.11 until something is raised; _evaluate maps the same errors.
            w.line("try:")
            w.indent()
        else:
            w = FunctionWriter(f"def {name}(ctx, ans, cnt, now_{', tr' if trace else ''}):")

        ms = "".join(f", m{p.position}" for p in b.tables)

        def result(escalation: int) -> str:
            raw = f"V, el, al, {escalation}, inv{ms}"
            if entry:
                return f"_dec = _new(_D); _dec._raw = ({raw}); return _dec"
            return f"return {raw}"

        # Invalid inputs are rare: a tuple, replaced when one is found, allocates nothing.
        w.line("inv = ()")
        self._prelude(w, exact=entry)
        for line in self._collected(trigger, trace):
            w.line(line)
        em = Emitter(self.ns)
        if trigger == "decision":
            rules = b.doc.escalation
            order = sorted(range(len(b.escalation)), key=lambda k: (rules[k].priority, k))
            for k in order:
                node = b.escalation[k].node
                self._emit_rule(w, em, k, node, trace, 1, result(k))
        w.line(result(-1))
        if entry:
            w.dedent()
            w.line("except (ArithmeticError, ValueError, RecursionError) as exc:")
            w.indent()
            w.line("raise _failed(exc) from None")
        return w.source()

    def _collected(self, trigger: str, trace: bool) -> list[str]:
        """The lines that collect a trigger's eligible and alert rules into ``el`` and ``al``.

        Generated once per (trigger, trace) and shared by the decide function and the entry
        point, so that the index buckets they call are generated and compiled once.
        """
        key = (trigger, trace)
        found = self.collected.get(key)
        if found is not None:
            return found
        b = self.b
        assert b.doc is not None
        w = FunctionWriter("")
        w.depth = 0
        em = Emitter(self.ns)
        if trigger == "decision" and b.eligibility:
            w.line("el = []")
            self._collect_inline(w, em, "el", list(enumerate(b.eligibility)), trace, 0)
        else:
            w.line("el = ()")
        alerts = [(k, r) for k, r in enumerate(b.alerts) if trigger in b.doc.alerts[k].on]
        if alerts:
            w.line("al = []")
            self._collect_inline(w, em, "al", alerts, trace, 2)
        else:
            w.line("al = ()")
        found = self.collected[key] = w.lines[1:]
        return found

    def _prelude(self, w: FunctionWriter, exact: bool = False) -> None:  # noqa: PLR0912, PLR0915 -- emits one generated prelude, line by line
        """Read every slot into a local, check its type, evaluate the tables; bind V.

        Fields are read by subscript, all of one object's in one ``try`` (a dict subscript
        costs half a ``get`` call); an object that lacks one of them pays one caught
        ``KeyError`` and is read again with ``get``. Objects are exact dicts by then (anything
        else reads as ``{}``), so no ``__missing__`` runs. With ``exact`` the context itself is
        known to be an exact dict, and its objects are read the same way.
        """
        b = self.b
        counters = {slot.index: key for key, slot in b.env.counters.items()}
        # The fields under each object, and a name per object, parents first, in slot order.
        fields: dict[str, list[tuple[int, str]]] = {}
        names: dict[str, str] = {}
        for path, slot in b.env.slots.items():
            if path == "now()" or slot.index in counters or path.startswith("tables."):
                continue
            parent, _, leaf = path.rpartition(".")
            fields.setdefault(parent, []).append((slot.index, leaf))
            parts = parent.split(".")
            for end in range(1, len(parts) + 1):
                names.setdefault(".".join(parts[:end]), f"o{len(names)}")
        roots = [p for p in names if "." not in p and p != "answers"]
        if exact and roots:
            self._read_all(w, "ctx", [(names[p], p) for p in roots])
        done: set[str] = set()

        def obj(prefix: str) -> str:
            name = names[prefix]
            if prefix in done:
                return name
            parent, _, leaf = prefix.rpartition(".")
            if parent:
                w.line(f"{name} = {obj(parent)}.get({leaf!r})")
            elif prefix == "answers":
                w.line(f"{name} = ans if ans is not None else ctx.get('answers')")
            elif not exact:
                w.line(f"{name} = ctx.get({prefix!r})")
            w.line(f"if {name}.__class__ is not _dict:")
            w.indent()
            w.line(f"inv, {name} = _object({name}, inv, {prefix!r})")
            w.dedent()
            done.add(prefix)
            self._read_all(w, name, [(f"s{i}", leaf) for i, leaf in fields.get(prefix, ())])
            return name

        for path, slot in b.env.slots.items():
            i = slot.index
            if path == "now()":
                w.line(f"s{i} = now_")
            elif i in counters:
                event, within = counters[i]
                w.line(f"s{i} = _count(cnt, {event!r}, {within!r})")
            elif not path.startswith("tables."):
                obj(path.rpartition(".")[0])
                self._check_value(w, i, b.fields[path])
        for plan in b.table_order:
            em = Emitter(self.ns)
            args = ", ".join(em.val(c.node) for c in plan.inputs)
            table_fn, resolve = self.table_functions(plan)
            m = f"m{plan.position}"
            dispatch = self.table_dispatch.get(table_fn)
            if dispatch is not None and all(isinstance(c.node, Slot) for c in plan.inputs):
                # The index lookup of an indexed table, inlined: one call fewer per table.
                index_name, column, rest = dispatch
                key = em.val(plan.inputs[column].node)
                w.line(f"{m} = {index_name}.get({key}, {rest})({args})")
            else:
                w.line(f"{m} = {table_fn}({args})")
            outs = [f"tables.{plan.model.id}.{name}" for name in plan.output_names]
            used = [(k, b.env.slots[p].index) for k, p in enumerate(outs) if p in b.env.slots]
            if used:
                w.line(f"_r = {resolve}({m})")
                for k, index in used:
                    w.line(f"s{index} = _r[{k}]")
        values = ", ".join(f"s{i}" for i in range(self.slot_count))
        w.line(f"V = ({values}{',' if self.slot_count == 1 else ''})")

    @staticmethod
    def _read_all(w: FunctionWriter, source: str, reads: list[tuple[str, str]]) -> None:
        """``name = source[key]`` for each read; if a key is missing, ``source.get`` for all."""
        if not reads:
            return
        w.line("try:")
        w.indent()
        for name, key in reads:
            w.line(f"{name} = {source}[{key!r}]")
        w.dedent()
        w.line("except KeyError:")
        w.indent()
        for name, key in reads:
            w.line(f"{name} = {source}.get({key!r})" if len(reads) > 1 else f"{name} = None")
        w.dedent()

    def _check_value(self, w: FunctionWriter, i: int, meta: FieldMeta) -> None:
        s = f"s{i}"
        kind = meta.type.kind
        expected = _expected_text(meta)
        report = f"inv += (({meta.path!r}, {expected!r}, {s}),)"
        if kind == "datetime":
            w.line(f"if {s} is not None:")
            w.indent()
            w.line(f"_d = _dt({s})")
            w.line("if _d is None:")
            w.indent()
            w.line(report)
            w.dedent()
            w.line(f"{s} = _d")
            w.dedent()
            return
        # The test a valid value passes comes first, so a present, valid value costs one check;
        # None (missing) is told apart only inside the branch.
        if meta.type.enum is not None:
            # A frozenset of strings: one membership test covers the type and the enum.
            enum = self.ns.add(meta.type.enum)
            suspect = f"{s}.__class__ is not _str or {s} not in {enum}"
        else:
            suspect = {
                "string": f"{s}.__class__ is not _str",
                "integer": f"{s}.__class__ is not _int",
                # x - x == 0.0 holds for every finite float, fails for inf and nan, and needs
                # no call; ints (not bools) are numbers too.
                "number": f"({s}.__class__ is not _float or {s} - {s} != 0.0)"
                f" and {s}.__class__ is not _int",
                "boolean": f"{s}.__class__ is not _bool",
                "list": f"{s}.__class__ is not _list",
            }[kind]
        w.line(f"if {suspect}:")
        w.indent()
        w.line(f"if {s} is not None:")
        w.indent()
        w.line(report)
        w.line(f"{s} = None")
        w.dedent()
        w.dedent()
        if kind == "list" and meta.type.item is not None:
            item = meta.type.item
            attrs = tuple((name, t.kind) for name, t in item.attrs or ())
            filt = self.ns.add(item_filter(item.kind, attrs))
            w.line("else:")
            w.indent()
            w.line(f"{s}, _dropped = {filt}({s})")
            w.line("if _dropped:")
            w.indent()
            w.line(f"inv += (({meta.path!r}, {expected!r}, _ITEMS),)")
            w.dedent()
            w.dedent()

    # -- tables ------------------------------------------------------------------------------

    def table_functions(self, plan: _TablePlan) -> tuple[str, str]:
        """The names of a table's match function and of its hit-policy resolver."""
        found = self.table_names.get(plan.position)
        if found is None:
            resolve = self.ns.add(
                resolver(plan.model.hit, plan.model.aggregate, plan.outputs, plan.ranks)
            )
            found = self.table_names[plan.position] = (self.table_function(plan), resolve)
        return found

    def table_function(self, plan: _TablePlan) -> str:
        """Generate the function returning a table's matches; return its name."""
        first = plan.model.hit == "first"
        args = ", ".join(f"x{c}" for c in range(len(plan.inputs)))
        rows = list(range(len(plan.cells)))
        column = self._index_column(plan)
        name = f"_table{plan.position}"
        if column is None:
            self.add(self._rows_function(name, plan, rows, args, first, skip=None))
            return name
        buckets: dict[Any, list[int]] = {}
        wildcard: list[int] = []
        for r in rows:
            values = equality_values(plan.cells[r][column])
            if values is None:
                wildcard.append(r)
                for bucket in buckets.values():
                    bucket.append(r)
            else:
                for v in dict.fromkeys(values):
                    buckets.setdefault(v, sorted(wildcard)).append(r)
        index: dict[Any, Any] = {}
        for k, (value, bucket_rows) in enumerate(buckets.items()):
            fname = f"{name}_b{k}"
            self.add(
                self._rows_function(fname, plan, sorted(set(bucket_rows)), args, first, skip=column)
            )
            index[value] = fname
        rest = f"{name}_rest"
        self.add(self._rows_function(rest, plan, wildcard, args, first, skip=None))
        index_name = self.ns.add({})
        self.deferred_index.append((index_name, index))
        self.table_dispatch[name] = (index_name, column, rest)
        self.add(f"def {name}({args}):\n    return {index_name}.get(x{column}, {rest})({args})\n")
        return name

    def _index_column(self, plan: _TablePlan) -> int | None:
        if len(plan.cells) < INDEX_MIN_ROWS:
            return None
        best, best_count = None, 0
        for c in range(len(plan.inputs)):
            count = sum(1 for row in plan.cells if equality_values(row[c]) is not None)
            distinct = {v for row in plan.cells for v in (equality_values(row[c]) or ())}
            if count > best_count and len(distinct) > 1:
                best, best_count = c, count
        return best if best_count * 2 >= len(plan.cells) else None

    def _rows_function(
        self,
        name: str,
        plan: _TablePlan,
        rows: list[int],
        args: str,
        first: bool,
        skip: int | None,
    ) -> str:
        """The match function for some rows: a bisect over precomputed intervals when every
        remaining test is on one numeric input, else the rows' tests in order."""
        found = self._interval_function(name, plan, rows, args, first, skip)
        return found or self._sequential_function(name, plan, rows, args, first, skip)

    def _interval_function(
        self,
        name: str,
        plan: _TablePlan,
        rows: list[int],
        args: str,
        first: bool,
        skip: int | None,
    ) -> str | None:
        if len(rows) < INDEX_MIN_ROWS:
            return None
        column = None
        for r in rows:
            for c, test in enumerate(plan.cells[r]):
                if isinstance(test, AnyTest) or (c == skip and equality_values(test) is not None):
                    continue
                if column not in (None, c):
                    return None
                column = c
        if column is None or not plan.input_types[column].numeric:
            return None
        index = interval_index([plan.cells[r][column] for r in rows], first)
        if index is None:
            return None
        points, results, unknown = index
        rows_of = (
            (lambda k: rows[k] if k >= 0 else -1)
            if first
            else (lambda ks: tuple(rows[k] for k in ks))
        )
        p = self.ns.add(points)
        res = self.ns.add(tuple(rows_of(x) for x in results))
        none = repr(rows_of(unknown))
        x = f"x{column}"
        w = FunctionWriter(f"def {name}({args}):")
        w.line(f"if {x} is None:")
        w.line(f"    return {none}")
        try:
            as_floats = [float(v) for v in points]
        except OverflowError:  # an int beyond every float: search the points themselves
            as_floats = []
        if as_floats == points and all(abs(v) < _EXACT_BELOW for v in as_floats):
            # Each point followed by the next float up: bisect_right counts the entries <= x,
            # which is 2i for x between P[i-1] and P[i] and 2i + 1 for x == P[i], the layout of
            # the results. Exact for every finite x, int or float, as no int and no float lies
            # strictly between a float below 2**52 and the next one.
            steps = [q for v in as_floats for q in (v, math.nextafter(v, math.inf))]
            w.line(f"return {res}[_bisect_right({self.ns.add(steps)}, {x})]")
            return w.source()
        if any(v.__class__ is not float for v in points) and as_floats == points:
            # Comparing a float with an int costs twice a float with a float: search a float
            # copy of the points for float values (the copy is exact, checked above).
            pf = self.ns.add(as_floats)
            w.line(f"P = {pf} if {x}.__class__ is _float else {p}")
            p = "P"
        w.line(f"i = _bisect({p}, {x})")
        w.line(f"if i < {len(points)} and {p}[i] == {x}:")
        w.line(f"    return {res}[2 * i + 1]")
        w.line(f"return {res}[2 * i]")
        return w.source()

    def _sequential_function(
        self, name: str, plan: _TablePlan, rows: list[int], args: str, first: bool, skip: int | None
    ) -> str:
        w = FunctionWriter(f"def {name}({args}):")
        if not first:
            w.line("m = []")
        for r in rows:
            conds = []
            for c, test in enumerate(plan.cells[r]):
                if c == skip and equality_values(test) is not None:
                    continue  # the bucket lookup already established this cell
                cond = emit_test(test, f"x{c}", self.ns.add)
                if cond is not None:
                    conds.append(cond)
            action = f"return {r}" if first else f"m.append({r})"
            if conds:
                w.line(f"if {' and '.join(conds)}:")
                w.indent()
                w.line(action)
                w.dedent()
            else:
                w.line(action)
                if first:
                    break
        w.line("return -1" if first else "return m")
        return w.source()

    def table_outputs_function(self) -> str:
        """``_tables(decision)``: each table's outputs by table id, what ``Decision.tables``
        returns (``None`` where no row won); a plain decision's class has it as its ``tables``
        property. Generated: a loop over the tables costs more than the work. Each call builds
        new dicts, so a caller may change what it is given.
        """
        items = []
        for plan in self.b.tables:
            k, names = plan.position, plan.output_names
            m = f"raw[{RAW_MATCHES + k}]"
            if plan.model.hit != "first":
                of = self.ns.add(self.outputs_of(plan))
                items.append(f"{plan.model.id!r}: {of}({m})")
                continue
            if len(names) == 1:
                # One output: a dict display costs less than copying the row's dict.
                column = self.ns.add(tuple(row[0] for row in plan.outputs))
                row = f"{{{names[0]!r}: {column}[_m{k}]}}"
            else:
                rows = self.ns.add(
                    tuple(dict(zip(names, row, strict=True)) for row in plan.outputs)
                )
                row = f"{rows}[_m{k}].copy()"
            items.append(f"{plan.model.id!r}: None if (_m{k} := {m}) < 0 else {row}")
        outputs = ", ".join(items)
        return f"def _tables(decision):\n    raw = decision._raw\n    return {{{outputs}}}\n"

    def outputs_of(self, plan: _TablePlan) -> Callable[[Any], dict[str, Any] | None]:
        """A table's matches → its outputs by name (one function per table, made once)."""
        found = self.table_outputs_of.get(plan.position)
        if found is None:
            found = self.table_outputs_of[plan.position] = output_builder(
                plan.model.hit,
                plan.output_names,
                resolver(plan.model.hit, plan.model.aggregate, plan.outputs, plan.ranks),
                plan.outputs,
            )
        return found

    # -- rule sections -----------------------------------------------------------------------

    def collect_function(
        self,
        name: str,
        rules: list[tuple[int, _Checked]],
        trace: bool,
        section: int,
        known: Mapping[int, Any],
        labels: Sequence[Any] | None,
    ) -> str:
        """A function appending the rules that hold to ``out`` (a bucket)."""
        em = Emitter(self.ns)
        body = FunctionWriter("")
        self._collect_inline(body, em, "out", rules, trace, section, known, labels)
        return self._assemble(f"def {name}(V, out{', tr' if trace else ''}):", em, body)

    def _collect_inline(
        self,
        w: FunctionWriter,
        em: Emitter,
        out: str,
        rules: list[tuple[int, _Checked]],
        trace: bool,
        section: int,
        known: Mapping[int, Any] | None = None,
        labels: Sequence[Any] | None = None,
    ) -> None:
        """Append to ``out`` every rule that holds, in document order.

        Rules are split by the field whose equality tests cover most of them; the rules left
        over are split again by the next such field, and so on; what no index covers runs
        inline. ``known`` maps the slots already used to reach this bucket to their values:
        the equality tests on them hold here and are not emitted again. Called with no
        ``known``, this is the section's outermost call, which sorts what the buckets appended.

        A rule is appended as ``labels[k]``, by default its index ``k``. Eligible rules are
        appended as their ids (what ``Decision.eligible_rules`` returns, with no lookup per
        evaluation) when that keeps document order: no buckets, or ids that sort in document
        order; otherwise as indices, mapped to ids after the sort.
        """
        outermost = known is None
        known = known or {}
        indexes: list[tuple[int, dict[Any, list[tuple[int, _Checked]]]]] = []
        rest = rules
        while True:
            slot, buckets, left = self._rule_index(rest, known)
            if slot is None:
                break
            indexes.append((slot, buckets))
            rest = left
        to_ids = None
        if outermost and section == 0:
            assert self.b.doc is not None
            ids = tuple(rule.id for rule in self.b.doc.eligibility)
            if not indexes or all(a < b for a, b in itertools.pairwise(ids)):
                labels = ids
            else:
                to_ids = self.ns.add(ids, key=("eligible ids",))
        label: Callable[[int], Any] = (lambda k: k) if labels is None else labels.__getitem__
        nodes = [(k, _given(rule.node, known)) for k, rule in rest]
        assumed = _guard_slots([node for _, node in nodes], trace)
        if assumed:
            # Test each field the rules guard against None once: when all are present (the
            # usual case) the rules run without their guards, otherwise with them.
            w.line(f"if {' and '.join(f's{i} is not None' for i in sorted(assumed))}:")
            w.indent()
            em.present = frozenset(assumed)
            self._emit_rules(w, em, nodes, trace, section, out, label)
            em.present = frozenset()
            w.dedent()
            w.line("else:")
            w.indent()
        self._emit_rules(w, em, nodes, trace, section, out, label)
        if assumed:
            w.dedent()
        for slot, buckets in indexes:
            index = {}
            for value, bucket_rules in buckets.items():
                fname = self.fn_name("_bucket")
                self.add(
                    self.collect_function(
                        fname, bucket_rules, trace, section, {**known, slot: value}, labels
                    )
                )
                index[value] = fname
            index_name = self.ns.add({})
            self.deferred_index.append((index_name, index))
            em.used.add(slot)
            w.line(f"_b = {index_name}.get(s{slot})")
            w.line("if _b is not None:")
            w.indent()
            w.line(f"_b(V, {out}{', tr' if trace else ''})")
            w.dedent()
        if indexes and outermost:  # a bucket's own buckets are sorted by its caller
            w.line(f"{out}.sort()")
            if to_ids is not None:
                w.line(f"{out} = [{to_ids}[k] for k in {out}]")

    def _emit_rules(
        self,
        w: FunctionWriter,
        em: Emitter,
        nodes: list[tuple[int, Node]],
        trace: bool,
        section: int,
        out: str,
        label: Callable[[int], Any],
    ) -> None:
        """Emit each rule's test in order; without a trace, runs of rules that each test the
        same field for equality go under one membership test of that field, so that a value
        none of them names skips the run with one set lookup (the index's job, for rule counts
        too small to bucket)."""
        for run_slot, values, run in _guard_runs(nodes, self.b.env, trace):
            if run_slot is not None:
                guard = self.ns.add(values, key=("guard", values))
                em.used.add(run_slot)
                w.line(f"if s{run_slot} in {guard}:")
                w.indent()
            for k, node in run:
                self._emit_rule(w, em, k, node, trace, section, f"{out}.append({label(k)!r})")
            if run_slot is not None:
                w.dedent()

    def _rule_index(
        self, rules: list[tuple[int, _Checked]], known: Mapping[int, Any]
    ) -> tuple[int | None, dict[Any, list[tuple[int, _Checked]]], list[tuple[int, _Checked]]]:
        """Pick the field whose equality tests split the rules best; bucket rules by value."""
        if len(rules) < (INDEX_MIN_RULES if known else INDEX_MIN_RULES_OUTER):
            return None, {}, rules
        keys: dict[int, dict[int, tuple[Any, ...]]] = {}
        for position, (_, rule) in enumerate(rules):
            for slot, values in _equality_conjuncts(rule.node):
                if slot not in known:
                    keys.setdefault(slot, {}).setdefault(position, values)
        if not keys:
            return None, {}, rules
        slot = max(keys, key=lambda s: (len(keys[s]), -s))
        chosen = keys[slot]
        if len(chosen) < INDEX_MIN_BUCKET:
            return None, {}, rules
        buckets: dict[Any, list[tuple[int, _Checked]]] = {}
        rest: list[tuple[int, _Checked]] = []
        for position, entry in enumerate(rules):
            accepted = chosen.get(position)
            if accepted is None:
                rest.append(entry)
            else:
                for v in dict.fromkeys(accepted):
                    buckets.setdefault(v, []).append(entry)
        return slot, buckets, rest

    def _emit_rule(
        self,
        w: FunctionWriter,
        em: Emitter,
        k: int,
        node: Node,
        trace: bool,
        section: int,
        action: str,
    ) -> None:
        if trace:
            w.line(f"_r = {_three_valued(em, node)}")
            w.line(f"tr.append(({section}, {k}, _r))")
            w.line("if _r is True:")
        else:
            w.line(f"if {em.true(node)}:")
        w.indent()
        w.line(action)
        w.dedent()

    def _assemble(self, header: str, em: Emitter, body: FunctionWriter) -> str:
        w = FunctionWriter(header)
        for index in sorted(em.used):
            w.line(f"s{index} = V[{index}]")
        w.lines.extend(body.lines[1:])
        if len(w.lines) == 1:
            w.line("return None")
        return w.source()

    def template_values_function(self, name: str, parts: list[str | _Checked]) -> str:
        """The values of a template's ``{...}`` parts, as a tuple (for rendering it masked)."""
        em = Emitter(self.ns)
        values = [em.val(part.node) for part in parts if not isinstance(part, str)]
        body = FunctionWriter("")
        body.line(f"return ({', '.join(values)},)")
        return self._assemble(f"def {name}(V):", em, body)

    def template_function(self, name: str, parts: list[str | _Checked]) -> str:
        em = Emitter(self.ns)
        pieces = []
        for part in parts:
            if isinstance(part, str):
                pieces.append(repr(part))
            else:
                pieces.append(f"_fmt({em.val(part.node)})")
        body = FunctionWriter("")
        body.line(f"return {' + '.join(pieces) if pieces else repr('')}")
        return self._assemble(f"def {name}(V):", em, body)

    # -- putting it together -----------------------------------------------------------------

    def build(self) -> CompiledRuleset:
        b = self.b
        assert b.doc is not None
        doc = b.doc
        for trigger in TRIGGERS:
            self.add(self.decide_function(f"_decide_{trigger}", trigger, trace=False))
        if not b.trees:
            self.add(self.decide_function("_evaluate_plain", "decision", trace=False, entry=True))
        self.add(self.table_outputs_function())
        for k, parts in enumerate(b.messages):
            self.add(self.template_function(f"_message{k}", parts))
            if _has_parts(parts):
                self.add(self.template_values_function(f"_message{k}_parts", parts))
        tree_metas = [self._tree(plan) for plan in b.trees]
        filename = f"<ruleset {doc.ruleset}>"
        # Arithmetic errors are found when a decision's JSON is built (engine.diagnose).
        diagnosis = plan_diagnosis(b, self.ns, filename)
        if diagnosis is not None:
            self.add(diagnosis.source)
        source = "\n".join(self.sources)
        ns = self.ns.compile(source, filename)
        self._link(ns, self.deferred_index)
        if diagnosis is not None:
            diagnosis.bind(ns)
        # The trace variants are generated now, from the same IR, but compiled only when a
        # caller first asks for a trace: most revisions never are, and it halves deploy time.
        self.sources, self.deferred_index = [], []
        for trigger in TRIGGERS:
            self.add(self.decide_function(f"_decide_{trigger}_trace", trigger, trace=True))
        trace_source = "\n".join(self.sources)
        trace_index = self.deferred_index
        namespace = self.ns

        def compile_trace() -> dict[str, Callable[..., Any]]:
            values = namespace.compile(trace_source, filename + " trace")
            self._link(values, trace_index)
            return {t: values[f"_decide_{t}_trace"] for t in TRIGGERS}

        return self._wrap(ns, tree_metas, source + "\n" + trace_source, compile_trace, diagnosis)

    @staticmethod
    def _link(ns: dict[str, Any], deferred: list[tuple[str, dict[Any, str]]]) -> None:
        """Point each index dict at the bucket functions it names, now that they exist."""
        for index_name, index in deferred:
            ns[index_name].update({value: ns[fname] for value, fname in index.items()})

    def _tree(self, plan: _TreePlan) -> Callable[[dict[str, Any]], TreeMeta]:
        tree = plan.model
        node_fns: dict[str, str] = {}
        say_fns: dict[str, str] = {}
        for node_id, branches in plan.branches.items():
            em = Emitter(self.ns)
            body = FunctionWriter("")
            for k, branch in enumerate(branches):
                if branch is None:
                    body.line(f"return {k}")
                    break
                body.line(f"if {em.true(branch.node)}:")
                body.indent()
                body.line(f"return {k}")
                body.dedent()
            else:
                body.line("return -1")
            name = f"_tree{plan.position}_{len(node_fns)}"
            self.add(self._assemble(f"def {name}(V):", em, body))
            node_fns[node_id] = name
        for node_id, parts in plan.says.items():
            name = f"_say{plan.position}_{len(say_fns)}"
            self.add(self.template_function(name, parts))
            if _has_parts(parts):
                self.add(self.template_values_function(name + "_parts", parts))
            say_fns[node_id] = name
        slots = self.b.env.slots

        def finish(ns: dict[str, Any]) -> TreeMeta:
            nodes = {}
            for node_id, node in tree.nodes.items():
                branches = plan.branches.get(node_id, [])
                reads = frozenset(
                    p
                    for br in branches
                    if br is not None
                    for p in br.reads
                    if not p.startswith("tables.")
                )
                nodes[node_id] = TreeNodeMeta(
                    id=node_id,
                    ask=node.ask,
                    answer=node.answer,
                    answer_slot=slots[node.answer].index
                    if node.answer is not None and node.answer in slots
                    else None,
                    gotos=tuple(br.goto for br in node.next or ()),
                    branch=ns[node_fns[node_id]] if node_id in node_fns else None,
                    reads=tuple(sorted(slots[p].index for p in reads if p in slots)),
                    outcome=node.outcome,
                    say=ns[say_fns[node_id]] if node_id in say_fns else None,
                    say_template=_template(
                        plan.says.get(node_id, []), ns.get(say_fns.get(node_id, "") + "_parts")
                    ),
                    queue=node.queue,
                )
            return TreeMeta(id=tree.id, start=tree.start, nodes=nodes)

        return finish

    def _wrap(
        self,
        ns: dict[str, Any],
        tree_metas: list[Callable[[dict[str, Any]], TreeMeta]],
        source: str,
        compile_trace: Callable[[], dict[str, Callable[..., Any]]],
        diagnosis: Diagnosis | None = None,
    ) -> CompiledRuleset:
        b = self.b
        doc = b.doc
        assert doc is not None
        slots = b.env.slots
        field_slots = {p: s.index for p, s in slots.items() if p in b.fields}

        def reads_of(checked: list[_Checked]) -> frozenset[str]:
            return frozenset(p for c in checked for p in c.reads if p in b.fields)

        table_reads = reads_of([c for plan in b.tables for c in plan.inputs])
        needed: dict[str, tuple[int, ...]] = {}
        for trigger in TRIGGERS:
            alerts = [c for k, c in enumerate(b.alerts) if trigger in doc.alerts[k].on]
            paths = table_reads | reads_of(alerts)
            if trigger == "decision":
                paths |= reads_of(b.eligibility) | reads_of(b.escalation)
            needed[trigger] = tuple(sorted(field_slots[p] for p in paths if p in field_slots))

        tables = [
            TableMeta(
                id=p.model.id,
                hit=p.model.hit,
                outputs=tuple(p.output_names),
                outputs_of=self.outputs_of(p),
                position=p.position,
            )
            for p in b.tables
        ]
        rule_reads = {
            section: [
                tuple(sorted(field_slots[p] for p in c.reads if p in field_slots)) for c in checked
            ]
            for section, checked in (
                ("eligibility", b.eligibility),
                ("escalation", b.escalation),
                ("alerts", b.alerts),
            )
        }
        return CompiledRuleset(
            name=doc.ruleset,
            digest=document_digest(b.data),
            document=b.data,
            model=doc,
            fields=b.fields,
            slot_paths=tuple(slots),
            field_slots=field_slots,
            counters_needed=frozenset(b.env.counters),
            decide={t: ns[f"_decide_{t}"] for t in TRIGGERS},
            table_outputs=ns["_tables"],
            compile_trace=compile_trace,
            alert_meta=[
                AlertMeta(
                    rule=a,
                    message=ns[f"_message{k}"],
                    template=_template(b.messages[k], ns.get(f"_message{k}_parts")),
                )
                for k, a in enumerate(doc.alerts)
            ],
            tables=tables,
            trees={m.id: m for m in (make(ns) for make in tree_metas)},
            needed=needed,
            rule_reads=rule_reads,
            source=source,
            diagnosis=diagnosis,
            entry=None if b.trees else partial(_bind_entry, ns),
        )


def _bind_entry(ns: dict[str, Any], ruleset: CompiledRuleset) -> Callable[..., Any]:
    """The generated plain entry point, bound to ``ruleset``: the calls it does not answer
    itself go to that ruleset's ``_evaluate``, and its decisions are of that ruleset."""
    return with_globals(
        ns["_evaluate_plain"],
        _evaluate=ruleset._evaluate,
        _failed=ruleset._failed,
        _D=plain_decision_class(ruleset, ns["_tables"]),
    )


def _has_parts(parts: list[str | _Checked]) -> bool:
    return any(not isinstance(part, str) for part in parts)


def _template(
    parts: list[str | _Checked], values: Callable[[tuple[Any, ...]], tuple[Any, ...]] | None
) -> Template | None:
    """A template with ``{...}`` parts, for rendering it masked; None for plain text."""
    if values is None:
        return None
    pieces = tuple(part if isinstance(part, str) else part.reads for part in parts)
    reads = frozenset(p for piece in pieces if not isinstance(piece, str) for p in piece)
    return Template(pieces=pieces, values=values, reads=reads)


def _three_valued(em: Emitter, node: Node) -> str:
    return f"(True if {em.true(node)} else (False if {em.false(node)} else None))"


def _guard_slots(nodes: list[Node], trace: bool) -> set[int]:
    """The nullable slots worth checking once before ``nodes`` instead of in each of them.

    Empty unless checking them up front saves at least two checks. Without a trace, rules are
    only asked whether they are true, and ``x == "a"`` or ``x in [...]`` needs no guard then.
    """
    counts: dict[int, int] = {}

    def walk(n: Node) -> None:
        if isinstance(n, Slot):
            if n.nullable:
                counts[n.index] = counts.get(n.index, 0) + 1
        elif isinstance(n, Missing):
            return  # missing(x) reads x's nullness itself
        elif isinstance(n, (Not, Neg)):
            walk(n.operand)
        elif isinstance(n, BoolOp):
            for o in n.operands:
                walk(o)
        elif isinstance(n, Compare) and not trace and null_safe_when_true(n):
            walk(n.right)
        elif isinstance(n, (Compare, Arith)):
            walk(n.left)
            walk(n.right)
        elif isinstance(n, Call):
            for a in n.args:
                walk(a)
        elif isinstance(n, Quantifier):
            walk(n.source)

    for node in nodes:
        walk(node)
    if sum(counts.values()) < len(counts) + 2:
        return set()
    return set(counts)


def _guard_runs(
    nodes: list[tuple[int, Node]], env: Environment, trace: bool
) -> list[tuple[int | None, frozenset[Any], list[tuple[int, Node]]]]:
    """Split rules, in order, into runs that share an equality-tested field.

    Each run of ``GUARD_MIN_RUN`` or more rules comes with its field's slot and the union of
    the values its rules accept: a rule of the run can hold only when the field is one of them.
    A union that is the field's whole enum guards nothing and is dropped. With a trace every
    rule's result is recorded, so nothing is guarded.
    """
    if trace:
        return [(None, frozenset(), nodes)] if nodes else []
    tests = [dict(_equality_conjuncts(node)) for _, node in nodes]
    enums = {slot.index: slot.type.enum for slot in env.slots.values()}
    runs: list[tuple[int | None, frozenset[Any], list[tuple[int, Node]]]] = []
    i = 0
    while i < len(nodes):
        best_slot, best_end = None, i + 1
        for slot in tests[i]:
            end = i + 1
            while end < len(nodes) and slot in tests[end]:
                end += 1
            if end > best_end:
                best_slot, best_end = slot, end
        if best_slot is not None and best_end - i >= GUARD_MIN_RUN:
            values = frozenset(v for t in tests[i:best_end] for v in t[best_slot])
            enum = enums.get(best_slot)
            if enum is None or not enum <= values:
                runs.append((best_slot, values, nodes[i:best_end]))
                i = best_end
                continue
        if runs and runs[-1][0] is None:
            runs[-1][2].append(nodes[i])
        else:
            runs.append((None, frozenset(), [nodes[i]]))
        i += 1
    return runs


def _given(node: Node, known: Mapping[int, Any]) -> Node:
    """``node`` without the top-level conjuncts that the known slot values make true.

    Inside an index bucket the field the index keys on has the bucket's value, so the rule's
    ``field == literal`` or ``field in [...]`` test holds and need not run again.
    """
    if not known:
        return node
    conjuncts = node.operands if isinstance(node, BoolOp) and node.op == "and" else (node,)
    kept = tuple(c for c in conjuncts if not _holds_given(c, known))
    if len(kept) == len(conjuncts):
        return node
    if not kept:
        return Const(BOOLEAN, False, True)
    if len(kept) == 1:
        return kept[0]
    return BoolOp(node.type, node.nullable, "and", kept)


def _holds_given(node: Node, known: Mapping[int, Any]) -> bool:
    return any(
        slot in known and known[slot] in values for slot, values in _equality_conjuncts(node)
    )


def _equality_conjuncts(node: Node) -> list[tuple[int, tuple[Any, ...]]]:
    """(slot, values) for each top-level conjunct of the form ``field == literal`` / ``in``."""
    conjuncts = node.operands if isinstance(node, BoolOp) and node.op == "and" else (node,)
    found = []
    for c in conjuncts:
        if not isinstance(c, Compare):
            continue
        if c.op == "==":
            for a, v in ((c.left, c.right), (c.right, c.left)):
                if isinstance(a, Slot) and isinstance(v, Const) and _indexable(a):
                    found.append((a.index, (v.value,)))
        elif (
            c.op == "in"
            and isinstance(c.left, Slot)
            and isinstance(c.right, ListConst)
            and _indexable(c.left)
        ):
            found.append((c.left.index, c.right.values))
    return found


def _indexable(slot: Slot) -> bool:
    return slot.type.kind in ("string", "integer", "boolean") and not slot.path.startswith(
        ("count(", "now()")
    )


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _expected_text(meta: FieldMeta) -> str:
    t = meta.type
    if t.enum is not None:
        return "one of " + ", ".join(sorted(t.enum))
    if t.kind == "list" and t.item is not None:
        return f"list of {t.item.kind if t.item.kind != 'object' else 'objects'}"
    if t.kind == "datetime":
        return "RFC 3339 datetime"
    return t.kind


def document_digest(data: Any) -> str:
    """``sha256:`` of the canonical JSON of a document: equal content, equal digest."""
    canonical = json.dumps(
        data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()
