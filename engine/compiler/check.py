"""The checking stages: fields, tables, rules, policy, trees and tests.

Each reads the document model and what the stages before it found, checks one part of the
document, and records every problem it finds with where it is, rather than stopping at the
first; the expressions it checks become typed IR (``Located``) for the generator.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from typing import Any

from engine.compiler.build import Build, ComputedCell, Located, TablePlan, TreePlan, plural
from engine.durations import parse_duration
from engine.expr import (
    MAX_EXPRESSION_LENGTH,
    RESERVED_NAMES,
    SCALAR_TYPES,
    STRING,
    Const,
    FieldInfo,
    Slot,
    Type,
    list_of,
    mask_table_ids,
)
from engine.ir import with_article
from engine.model import MIN_EVERY_SECONDS, TreeNode
from engine.parts import FieldMeta
from engine.source import Path
from engine.tables import (
    CellError,
    check_test,
    output_type,
    output_value,
    parse_cell,
    template_cell,
)
from engine.times import parse_time

_SEGMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def check_fields(b: Build) -> None:
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


def _field_meta(b: Build, where: Path, path: str, kind: str, spec: Any) -> FieldMeta | None:
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


def _item_type(b: Build, where: Path, items: Any) -> Type | bool | None:
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


def check_tables(b: Build) -> None:
    """Each table's shape, output cells and output types, then its inputs and cells, then
    the order tables are evaluated in (before the rules: rules may read their outputs).

    An output's type is its cells' common type; a computed cell's is its expression's, and
    the expression may read other tables' outputs, so tables with computed cells are typed
    after the tables those cells read (``_typing_order``). A table of literal outputs is
    typed where it stands, as it always was.
    """
    assert b.doc is not None
    pending: list[tuple[TablePlan, dict[tuple[int, int], str]]] = []
    for position, table in enumerate(b.doc.tables):
        plan = TablePlan(table, position)
        b.tables.append(plan)
        where: Path = ("tables", position)

        def report(path: Path, message: str, where: Path = where) -> None:
            b.problem((*where, *path), message)

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
                    f"({plural(len(table.inputs), 'input')} + {plural(len(outputs), 'output')})",
                )
        plan.policy.check(table, report)
        if any(len(row) != width for row in table.rows):
            continue
        templates = _output_cells(b, plan)
        if templates:
            plan.cell_tables = _template_tables(b, plan, templates)
            b.env.table_outputs[table.id] = {}  # typed below, in the order its cells need
            pending.append((plan, templates))
        else:
            _output_types(b, plan)
    typed = _typing_order(b, pending)
    for plan, templates in typed:
        _computed_cells(b, plan, templates)
        _output_types(b, plan)
    for plan, _ in pending:
        if plan.unchecked and not any(plan is other for other, _ in typed):
            _output_types(b, plan)  # on a cycle: its literal outputs' types, for rules
    for plan in b.tables:
        _table_inputs(b, plan)
    b.table_order = _table_order(b)


def _output_cells(b: Build, plan: TablePlan) -> dict[tuple[int, int], str]:
    """Each row's output values into ``plan.outputs``; the cells written as templates, by
    (row, output), are returned to be checked once the tables they read are typed (their
    places in ``plan.outputs`` hold None)."""
    table = plan.model
    inputs = len(table.inputs)
    templates: dict[tuple[int, int], str] = {}
    for r, row in enumerate(table.rows):
        values: list[Any] = []
        for c, cell in enumerate(row[inputs:]):
            if template_cell(cell):
                templates[r, c] = cell
                values.append(None)
            else:
                values.append(
                    _output_cell(b, ("tables", plan.position, "rows", r, inputs + c), cell)
                )
        plan.outputs.append(tuple(values))
    return templates


def _output_types(b: Build, plan: TablePlan) -> None:
    """Each output column's type (what a rule reading it sees), and the rows' ranks for the
    policies that rank by declared values."""
    table = plan.model
    where: Path = ("tables", plan.position)

    def report(path: Path, message: str) -> None:
        b.problem((*where, *path), message)

    types = {}
    ranked = True
    for c, name in enumerate(plan.output_names):
        column = [row[c] for row in plan.outputs]
        computed = [cell for (_, k), cell in plan.computed.items() if k == c]
        declared = table.outputs[c]
        if (
            computed
            and plan.policy.ranks_by_values
            and not isinstance(declared, str)
            and declared.values is not None
        ):
            ranked = False
            b.problem(
                computed[0].path,
                f"hit: {plan.policy.name} ranks rows by the declared values of output "
                f"{name!r}, so its cells must be literal values: a computed cell cannot be "
                "ranked (compute it in an output without values, or in a table that "
                "reads this one)",
            )
            continue
        column_type = output_type(column, [cell.type for cell in computed])
        if column_type is None:
            if not any(k == c for (_, k) in plan.unchecked):  # else reported with the cell
                b.problem(
                    (*where, "outputs", c),
                    f"output {name!r} mixes value types; each output column must hold one type"
                    if computed or any(v is not None for v in column)
                    else f"output {name!r} is null in every row; give it at least one value",
                )
            continue
        if table.aggregate in ("sum", "min", "max") and not column_type.numeric:
            b.problem(
                (*where, "aggregate"),
                f"aggregate {table.aggregate} needs numbers, "
                f"but output {name!r} holds {column_type}",
            )
        types[name] = plan.policy.read_type(table.aggregate, column_type)
    if ranked and not plan.unchecked:  # (a cell not checked has been reported)
        plan.ranks = plan.policy.ranks(table, plan.outputs, _declared_values(b, plan), report)
    b.env.table_outputs[table.id] = types


def _template_tables(
    b: Build, plan: TablePlan, templates: dict[tuple[int, int], str]
) -> dict[str, Path]:
    """The tables a table's computed cells read (``tables.<id>.<output>`` in their
    ``{...}`` parts), each with where it is first read: found from the text, before any
    type is known, so that tables are typed in the order their cells need."""
    assert b.doc is not None
    ids = {t.id for t in b.doc.tables}
    found: dict[str, Path] = {}
    for (r, c), text in templates.items():
        path: Path = ("tables", plan.position, "rows", r, len(plan.model.inputs) + c)
        for part in re.findall(r"\{([^{}]*)\}", text.replace("{{", "").replace("}}", "")):
            if len(part) > MAX_EXPRESSION_LENGTH:
                continue  # refused when the cell is checked
            masked, names = mask_table_ids(part, ids)
            try:
                tree = ast.parse(masked.strip(), mode="eval")
            except (SyntaxError, ValueError, RecursionError, MemoryError):
                continue  # reported when the cell is checked
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.Attribute)
                    and isinstance(node.value, ast.Name)
                    and node.value.id == "tables"
                ):
                    table_id = names.get(node.attr, node.attr)
                    if table_id in ids:
                        found.setdefault(table_id, path)
    return found


def _typing_order(
    b: Build, pending: list[tuple[TablePlan, dict[tuple[int, int], str]]]
) -> list[tuple[TablePlan, dict[tuple[int, int], str]]]:
    """The tables with computed cells, each after the tables with computed cells it reads
    (the others are typed already). A table on a cycle is left out, and so is one that
    reads it: its cells cannot be typed, and ``_table_order`` reports the cycle."""
    by_id = {plan.model.id: (plan, templates) for plan, templates in pending}
    order: list[tuple[TablePlan, dict[tuple[int, int], str]]] = []
    state: dict[str, int] = {}  # 1 visiting, 2 typed, 3 cannot be typed

    def visit(table_id: str) -> bool:
        if state.get(table_id) == 1:
            return False
        if table_id in state:
            return state[table_id] == 2
        state[table_id] = 1
        plan, templates = by_id[table_id]
        ok = all(visit(dep) for dep in sorted(plan.cell_tables) if dep in by_id)
        state[table_id] = 2 if ok else 3
        if ok:
            order.append((plan, templates))
        else:
            plan.unchecked.update(templates)
        return ok

    for plan, _ in pending:
        visit(plan.model.id)
    return order


def _computed_cells(b: Build, plan: TablePlan, templates: dict[tuple[int, int], str]) -> None:
    """Check each computed cell of a table: its ``{...}`` parts like any template's; what it
    gives (a part alone keeps its value's type, text with parts is a string); that it reads
    no ``pii`` field (table outputs are shown and recorded as they are)."""
    inputs = len(plan.model.inputs)
    for (r, c), text in templates.items():
        path: Path = ("tables", plan.position, "rows", r, inputs + c)
        parts = b.template(path, text)
        if parts is None:
            plan.unchecked.add((r, c))
            continue
        checked = [part for part in parts if not isinstance(part, str)]
        if not checked:  # only {{ and }}: text
            row = list(plan.outputs[r])
            row[c] = "".join(str(part) for part in parts)
            plan.outputs[r] = tuple(row)
            continue
        pii = sorted(p for part in checked for p in part.reads if _classification(b, p) == "pii")
        if pii:
            b.problem(
                path,
                f"an output cell may not read the pii field {pii[0]!r}: table outputs are "
                "shown to agents and recorded in the ledger as they are, unmasked",
            )
            plan.unchecked.add((r, c))
            continue
        native = len(parts) == 1
        cell_type = checked[0].node.type if native else STRING
        if cell_type.kind not in ("string", "integer", "number", "boolean"):
            b.problem(
                path,
                "a computed output must be a string, a number or a boolean, but this cell "
                f"gives {with_article(cell_type)} (text around it, 'due {{...}}', makes a "
                "string)",
            )
            plan.unchecked.add((r, c))
            continue
        plan.computed[r, c] = ComputedCell(path, parts, native, cell_type.plain())
        plan.depends_on |= {
            p.split(".")[1] for part in checked for p in part.reads if p.startswith("tables.")
        }


def _classification(b: Build, path: str) -> str | None:
    meta = b.fields.get(path)
    return None if meta is None else meta.classification


def _output_cell(b: Build, path: Path, cell: Any) -> Any:
    """An output cell's value (``'"new"'`` is ``new``); a problem, and the cell, if refused."""
    try:
        return output_value(cell)
    except CellError as exc:
        b.problem(path, str(exc))
        return cell


def _declared_values(b: Build, plan: TablePlan) -> list[list[Any] | None]:
    """Each output's declared ``values`` (what ``priority`` ranks rows by), or None."""
    where = ("tables", plan.position, "outputs")
    return [
        None
        if isinstance(o, str) or o.values is None
        else [_output_cell(b, (*where, c, "values", k), v) for k, v in enumerate(o.values)]
        for c, o in enumerate(plan.model.outputs)
    ]


def _table_inputs(b: Build, plan: TablePlan) -> None:
    table = plan.model
    where: Path = ("tables", plan.position)
    for i, text in enumerate(table.inputs):
        checked = b.expression((*where, "inputs", i), text, boolean=False)
        if checked is None:
            plan.inputs.append(Located((), Const(STRING, False, ""), frozenset()))
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


def _table_order(b: Build) -> list[TablePlan]:
    by_id = {p.model.id: p for p in b.tables}
    order: list[TablePlan] = []
    state: dict[str, int] = {}

    def visit(plan: TablePlan, chain: list[str]) -> None:
        tid = plan.model.id
        if state.get(tid) == 2:
            return
        if state.get(tid) == 1:
            cycle = [*chain[chain.index(tid) :], tid]
            # Where the first table of the cycle reads the next: its inputs, or a cell.
            after = cycle[1]
            read_by_cell = after in plan.cell_tables and all(
                not p.startswith(f"tables.{after}.") for c in plan.inputs for p in c.reads
            )
            b.problem(
                plan.cell_tables[after] if read_by_cell else ("tables", plan.position, "inputs"),
                f"tables read each other in a cycle: {' → '.join(cycle)}",
            )
            return
        state[tid] = 1
        for dep in sorted(plan.depends_on | set(plan.cell_tables)):
            if dep in by_id:
                visit(by_id[dep], [*chain, tid])
        state[tid] = 2
        order.append(plan)

    for plan in b.tables:
        visit(plan, [])
    return order


def check_rules(b: Build) -> None:
    assert b.doc is not None
    sections: list[tuple[str, list[Any], list[Located]]] = [
        ("eligibility", b.doc.eligibility, b.eligibility),
        ("escalation", b.doc.escalation, b.escalation),
        ("alerts", b.doc.alerts, b.alerts),
    ]
    for section, rules, out in sections:
        for i, rule in enumerate(rules):
            checked = b.expression((section, i, "when"), rule.when, boolean=True)
            if checked is not None:
                out.append(checked)
    for i, rule in enumerate(b.doc.eligibility):
        found = _param_templates(b, ("eligibility", i, "params"), (), rule.params)
        if found:
            b.params[i] = found
    policy = b.doc.policy
    for i, rule in enumerate(b.doc.escalation):
        _check_on(b, ("escalation", i), rule.on, rule.every)
    for i, alert in enumerate(b.doc.alerts):
        _check_on(b, ("alerts", i), alert.on, alert.every)
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


def _check_on(b: Build, where: tuple[str, int], on: Sequence[str], every: str | None) -> None:
    """A rule's ``on`` names each trigger once; ``on: [timer]`` and ``every`` go together,
    and ``every`` is a duration of at least a second."""
    if len(set(on)) != len(on):
        b.problem((*where, "on"), "'on' lists a trigger twice")
    if ("timer" in on) != (every is not None):
        b.problem(
            (*where, "every" if every is not None else "on"),
            "a rule runs on a timer with both on: [timer] and every: (such as every: 30s)",
        )
    elif every is not None:
        try:
            period = parse_duration(every)
        except ValueError as exc:
            b.problem((*where, "every"), str(exc))
        else:
            if period.total_seconds() < MIN_EVERY_SECONDS:
                b.problem((*where, "every"), "every must be at least 1s")


def _param_templates(
    b: Build, where: Path, path: tuple[str | int, ...], value: Any
) -> list[tuple[tuple[str | int, ...], list[str | Located]]]:
    """The strings among an offer's parameters (at any depth) that are templates: text with
    ``{...}`` parts, checked like a message's."""
    found: list[tuple[tuple[str | int, ...], list[str | Located]]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            found.extend(_param_templates(b, where, (*path, key), item))
    elif isinstance(value, list):
        for k, item in enumerate(value):
            found.extend(_param_templates(b, where, (*path, k), item))
    elif isinstance(value, str) and ("{" in value or "}" in value):
        parts = b.template((*where, *path), value)
        if parts is not None:  # with {...} parts, or only {{ and }}: text either way
            found.append((path, parts))
    return found


def check_policy(b: Build) -> None:
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


def _duration(b: Build, where: tuple[str | int, ...], text: str) -> None:
    try:
        parse_duration(text)
    except ValueError as exc:
        b.problem(where, str(exc))


def check_trees(b: Build) -> None:
    assert b.doc is not None
    for position, tree in enumerate(b.doc.trees):
        plan = TreePlan(tree, position)
        b.trees.append(plan)
        where: Path = ("trees", position)
        nodes = tree.nodes
        if tree.start not in nodes:
            b.problem((*where, "start"), f"start node {tree.start!r} is not among the nodes")
            continue
        for node_id, node in nodes.items():
            _tree_node(b, plan, (*where, "nodes", node_id), node_id, node)
        _tree_links(b, plan)


def _tree_node(b: Build, plan: TreePlan, where: Path, node_id: str, node: TreeNode) -> None:  # noqa: PLR0912 -- a compile stage: one check after another
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
    if node.ask is not None and ("{" in node.ask or "}" in node.ask):
        parts = b.template((*where, "ask"), node.ask)
        if parts is not None:
            plan.asks[node_id] = parts
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
    branches: list[Located | None] = []
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


def _tree_links(b: Build, plan: TreePlan) -> None:
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


def check_tests(b: Build) -> None:  # noqa: PLR0912 -- a compile stage: one check after another
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
