"""Rule sections: the code that collects the eligibility and alert rules that hold (bucketed
by field value, runs of rules under one membership test, the rest inline) and each rule's
test, with or without a trace.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from engine.codegen import Emitter, FunctionWriter
from engine.compiler.build import Located
from engine.compiler.generate.output import Output
from engine.compiler.index import given, guard_runs, guard_slots, rule_index
from engine.expr import Node
from engine.generated import VALUES, slot_name


def collect_function(
    g: Output,
    name: str,
    rules: list[tuple[int, Located]],
    trace: bool,
    section: int,
    known: Mapping[int, Any],
    labels: Sequence[Any] | None,
) -> str:
    """A function appending the rules that hold to ``out`` (a bucket)."""
    em = Emitter(g.ns)
    body = FunctionWriter("")
    collect_inline(g, body, em, "out", rules, trace, section, known, labels)
    return g.assemble(f"def {name}({VALUES}, out{', tr' if trace else ''}):", em, body)


def collect_inline(
    g: Output,
    w: FunctionWriter,
    em: Emitter,
    out: str,
    rules: list[tuple[int, Located]],
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
    indexes: list[tuple[int, dict[Any, list[tuple[int, Located]]]]] = []
    rest = rules
    while True:
        slot, buckets, left = rule_index(rest, known)
        if slot is None:
            break
        indexes.append((slot, buckets))
        rest = left
    to_ids = None
    if outermost and section == 0:
        assert g.b.doc is not None
        ids = tuple(rule.id for rule in g.b.doc.eligibility)
        if not indexes or all(a < b for a, b in itertools.pairwise(ids)):
            labels = ids
        else:
            to_ids = g.ns.add(ids, key=("eligible ids",))
    label: Callable[[int], Any] = (lambda k: k) if labels is None else labels.__getitem__
    nodes = [(k, given(rule.node, known)) for k, rule in rest]
    assumed = guard_slots([node for _, node in nodes], trace)
    if assumed:
        # Test each field the rules guard against None once: when all are present (the
        # usual case) the rules run without their guards, otherwise with them.
        w.line(f"if {' and '.join(f'{slot_name(i)} is not None' for i in sorted(assumed))}:")
        w.indent()
        em.present = frozenset(assumed)
        _emit_rules(g, w, em, nodes, trace, section, out, label)
        em.present = frozenset()
        w.dedent()
        w.line("else:")
        w.indent()
    _emit_rules(g, w, em, nodes, trace, section, out, label)
    if assumed:
        w.dedent()
    for slot, buckets in indexes:
        index = {}
        for value, bucket_rules in buckets.items():
            fname = g.fn_name("_bucket")
            g.add(
                collect_function(
                    g, fname, bucket_rules, trace, section, {**known, slot: value}, labels
                )
            )
            index[value] = fname
        index_name = g.ns.add({})
        g.deferred_index.append((index_name, index))
        em.used.add(slot)
        w.line(f"_b = {index_name}.get({slot_name(slot)})")
        w.line("if _b is not None:")
        w.indent()
        w.line(f"_b({VALUES}, {out}{', tr' if trace else ''})")
        w.dedent()
    if indexes and outermost:  # a bucket's own buckets are sorted by its caller
        w.line(f"{out}.sort()")
        if to_ids is not None:
            w.line(f"{out} = [{to_ids}[k] for k in {out}]")


def _emit_rules(
    g: Output,
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
    for run_slot, values, run in guard_runs(nodes, g.b.env, trace):
        if run_slot is not None:
            guard = g.ns.add(values, key=("guard", values))
            em.used.add(run_slot)
            w.line(f"if {slot_name(run_slot)} in {guard}:")
            w.indent()
        for k, node in run:
            emit_rule(g, w, em, k, node, trace, section, f"{out}.append({label(k)!r})")
        if run_slot is not None:
            w.dedent()


def emit_rule(
    g: Output,
    w: FunctionWriter,
    em: Emitter,
    k: int,
    node: Node,
    trace: bool,
    section: int,
    action: str,
) -> None:
    if trace:
        w.line(f"_r = {three_valued(em, node)}")
        w.line(f"tr.append(({section}, {k}, _r))")
        w.line("if _r is True:")
    else:
        w.line(f"if {em.true(node)}:")
    w.indent()
    w.line(action)
    w.dedent()


def three_valued(em: Emitter, node: Node) -> str:
    return f"(True if {em.true(node)} else (False if {em.false(node)} else None))"
