"""The ``generate`` stage: the checked document's Python source, compiled once, wrapped in a
``CompiledRuleset``. What each part generates:

    entry    the decide function of each trigger and the plain entry point
    reads    the prelude: inputs read and checked, tables evaluated
    rules    the rule sections: buckets, guard runs, each rule's test
    tables   table match functions and their outputs
    trees    tree node branches and outcomes
    text     message and ``say`` templates

``output.Output`` is the module being written; this module puts the parts together.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from engine.compiler.build import Build, Located
from engine.compiler.generate.entry import bind_entry, decide_function
from engine.compiler.generate.output import Output, link
from engine.compiler.generate.tables import outputs_of, rows_at, table_outputs_function
from engine.compiler.generate.text import (
    has_parts,
    param_templates,
    template_function,
    template_meta,
    template_values_function,
)
from engine.compiler.generate.trees import tree_meta
from engine.compiler.load import document_digest
from engine.diagnose import Diagnosis, plan_diagnosis
from engine.errors import in_document_order
from engine.generated import (
    PLAIN_ENTRY,
    TABLE_OUTPUTS,
    TRIGGER_DECISION,
    decide_name,
    message_name,
    parts_name,
)
from engine.model import TRIGGERS
from engine.parts import AlertMeta, Logic, ParamTemplate, TableMeta, TreeMeta
from engine.ruleset import CompiledRuleset

__all__ = ["generate"]


def generate(b: Build) -> None:
    assert b.doc is not None
    b.compiled = build(Output(b))


def build(g: Output) -> CompiledRuleset:
    b = g.b
    assert b.doc is not None
    doc = b.doc
    for trigger in TRIGGERS:
        g.add(decide_function(g, decide_name(trigger), trigger, trace=False))
    if not b.trees:
        g.add(decide_function(g, PLAIN_ENTRY, TRIGGER_DECISION, trace=False, entry=True))
    g.add(table_outputs_function(g))
    for k, parts in enumerate(b.messages):
        g.add(template_function(g, message_name(k), parts))
        if has_parts(parts):
            g.add(template_values_function(g, parts_name(message_name(k)), parts))
    tree_metas = [tree_meta(g, plan) for plan in b.trees]
    params = {doc.eligibility[k].id: param_templates(g, k, found) for k, found in b.params.items()}
    filename = f"<ruleset {doc.ruleset}>"
    # Arithmetic errors are found when a decision's JSON is built (engine.diagnose).
    diagnosis = plan_diagnosis(b, g.ns, filename)
    if diagnosis is not None:
        g.add(diagnosis.source)
    source = "\n".join(g.sources)
    ns = g.ns.compile(source, filename)
    link(ns, g.deferred_index)
    if diagnosis is not None:
        diagnosis.bind(ns)
    # The trace variants are generated now, from the same IR, but compiled only when a
    # caller first asks for a trace: most revisions never are, and it halves deploy time.
    g.sources, g.deferred_index = [], []
    for trigger in TRIGGERS:
        g.add(decide_function(g, decide_name(trigger, trace=True), trigger, trace=True))
    trace_source = "\n".join(g.sources)
    trace_index = g.deferred_index
    namespace = g.ns

    def compile_trace() -> dict[str, Callable[..., Any]]:
        values = namespace.compile(trace_source, filename + " trace")
        link(values, trace_index)
        return {t: values[decide_name(t, trace=True)] for t in TRIGGERS}

    return _wrap(g, ns, tree_metas, params, source + "\n" + trace_source, compile_trace, diagnosis)


def _wrap(
    g: Output,
    ns: dict[str, Any],
    tree_metas: list[Callable[[dict[str, Any]], TreeMeta]],
    params: dict[str, Callable[[dict[str, Any]], tuple[ParamTemplate, ...]]],
    source: str,
    compile_trace: Callable[[], dict[str, Callable[..., Any]]],
    diagnosis: Diagnosis | None,
) -> CompiledRuleset:
    b = g.b
    doc = b.doc
    assert doc is not None
    slots = b.env.slots
    field_slots = {p: s.index for p, s in slots.items() if p in b.fields}

    def reads_of(checked: list[Located]) -> frozenset[str]:
        return frozenset(p for c in checked for p in c.reads if p in b.fields)

    table_reads = reads_of([c for plan in b.tables for c in plan.inputs])
    cell_reads = [
        part
        for plan in b.tables
        for cell in plan.computed.values()
        for part in cell.parts
        if not isinstance(part, str)
    ]
    if cell_reads:  # what computed output cells read is read by the table, too
        table_reads |= reads_of(cell_reads)
    needed: dict[str, tuple[int, ...]] = {}
    for trigger in TRIGGERS:
        alerts = [c for k, c in enumerate(b.alerts) if trigger in doc.alerts[k].on]
        escalation = [c for k, c in enumerate(b.escalation) if trigger in doc.escalation[k].on]
        paths = table_reads | reads_of(alerts) | reads_of(escalation)
        if trigger == "decision":
            paths |= reads_of(b.eligibility)
        needed[trigger] = tuple(sorted(field_slots[p] for p in paths if p in field_slots))

    tables = [
        TableMeta(
            id=p.model.id,
            policy=p.policy,
            outputs=tuple(p.output_names),
            outputs_of=outputs_of(g, p),
            position=p.position,
            rows=tuple(p.outputs),
            rows_at=rows_at(g, p),
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
    logic = Logic(
        conditions={
            "eligibility": tuple(c.node for c in b.eligibility),
            "escalation": tuple(c.node for c in b.escalation),
            "alerts": tuple(c.node for c in b.alerts),
        },
        table_inputs={
            p.model.id: tuple(
                (located.node, tuple(row[column] for row in p.cells))
                for column, located in enumerate(p.inputs)
            )
            for p in b.tables
        },
        table_cells={
            p.model.id: tuple(
                part.node
                for cell in p.computed.values()
                for part in cell.parts
                if not isinstance(part, str)
            )
            for p in b.tables
            if p.computed
        },
    )
    return CompiledRuleset(
        name=doc.ruleset,
        digest=document_digest(b.data),
        document=b.data,
        model=doc,
        fields=b.fields,
        slot_paths=tuple(slots),
        field_slots=field_slots,
        counters_needed=frozenset(b.env.counters),
        decide={t: ns[decide_name(t)] for t in TRIGGERS},
        table_outputs=ns[TABLE_OUTPUTS],
        compile_trace=compile_trace,
        alert_meta=[
            AlertMeta(
                rule=a,
                message=ns[message_name(k)],
                template=template_meta(b.messages[k], ns.get(parts_name(message_name(k)))),
            )
            for k, a in enumerate(doc.alerts)
        ],
        tables=tables,
        trees={m.id: m for m in (make(ns) for make in tree_metas)},
        param_templates={rule: make(ns) for rule, make in params.items()},
        needed=needed,
        rule_reads=rule_reads,
        source=source,
        diagnosis=diagnosis,
        logic=logic,
        warnings=tuple(in_document_order(b.warnings)),
        untested=tuple(b.untested),
        entry=None if b.trees else partial(bind_entry, ns),
    )
