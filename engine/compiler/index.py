"""How lookups are shaped: which field buckets a section's rules, which runs of rules share a
membership test, which column indexes a table's rows.

These are decisions about the generated code's shape, made from the checked IR alone; the
generator asks and emits what they say. Nothing here changes what a rule or a row means.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.codegen import null_safe_when_true
from engine.compiler.build import Located, TablePlan
from engine.expr import (
    BOOLEAN,
    Arith,
    BoolOp,
    Call,
    Compare,
    Const,
    Environment,
    ListConst,
    Missing,
    Neg,
    Node,
    Not,
    Quantifier,
    Slot,
)
from engine.tables import INDEX_MIN_ROWS, equality_values

# A section's rules are bucketed from this many; a bucket's rules are split again from 16.
INDEX_MIN_RULES_OUTER = 8
INDEX_MIN_RULES = 16
INDEX_MIN_BUCKET = 4
# Rules in a row that test one field for equality share a membership test from this many.
GUARD_MIN_RUN = 2


def rule_index(
    rules: list[tuple[int, Located]], known: Mapping[int, Any]
) -> tuple[int | None, dict[Any, list[tuple[int, Located]]], list[tuple[int, Located]]]:
    """Pick the field whose equality tests split the rules best; bucket rules by value.

    Returns the field's slot (None when no field is worth it), the rules by the value they
    accept, and the rules that test no value of it. ``known`` holds the slots an enclosing
    bucket already fixed: they are not picked again.
    """
    if len(rules) < (INDEX_MIN_RULES if known else INDEX_MIN_RULES_OUTER):
        return None, {}, rules
    keys: dict[int, dict[int, tuple[Any, ...]]] = {}
    for position, (_, rule) in enumerate(rules):
        for slot, values in equality_conjuncts(rule.node):
            if slot not in known:
                keys.setdefault(slot, {}).setdefault(position, values)
    if not keys:
        return None, {}, rules
    slot = max(keys, key=lambda s: (len(keys[s]), -s))
    chosen = keys[slot]
    if len(chosen) < INDEX_MIN_BUCKET:
        return None, {}, rules
    buckets: dict[Any, list[tuple[int, Located]]] = {}
    rest: list[tuple[int, Located]] = []
    for position, entry in enumerate(rules):
        accepted = chosen.get(position)
        if accepted is None:
            rest.append(entry)
        else:
            for v in dict.fromkeys(accepted):
                buckets.setdefault(v, []).append(entry)
    return slot, buckets, rest


def index_column(plan: TablePlan) -> int | None:
    """The input column whose equality tests split a table's rows, or None: one that at least
    half the rows test for equality, over more than one value."""
    if len(plan.cells) < INDEX_MIN_ROWS:
        return None
    best, best_count = None, 0
    for c in range(len(plan.inputs)):
        count = sum(1 for row in plan.cells if equality_values(row[c]) is not None)
        distinct = {v for row in plan.cells for v in (equality_values(row[c]) or ())}
        if count > best_count and len(distinct) > 1:
            best, best_count = c, count
    return best if best_count * 2 >= len(plan.cells) else None


def guard_slots(nodes: list[Node], trace: bool) -> set[int]:
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


def guard_runs(
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
    tests = [dict(equality_conjuncts(node)) for _, node in nodes]
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


def given(node: Node, known: Mapping[int, Any]) -> Node:
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
    return any(slot in known and known[slot] in values for slot, values in equality_conjuncts(node))


def equality_conjuncts(node: Node) -> list[tuple[int, tuple[Any, ...]]]:
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
