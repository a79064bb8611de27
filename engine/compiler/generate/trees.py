"""Guided decision trees: one function per node choosing its branch, the ``say`` templates of
its outcomes, and the tree's metadata, finished once the module is compiled.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.codegen import Emitter, FunctionWriter
from engine.compiler.build import TreePlan
from engine.compiler.generate.output import Output
from engine.compiler.generate.text import (
    has_parts,
    template_function,
    template_meta,
    template_values_function,
)
from engine.generated import VALUES
from engine.parts import TreeMeta, TreeNodeMeta


def tree_meta(g: Output, plan: TreePlan) -> Callable[[dict[str, Any]], TreeMeta]:
    tree = plan.model
    node_fns: dict[str, str] = {}
    say_fns: dict[str, str] = {}
    for node_id, branches in plan.branches.items():
        em = Emitter(g.ns)
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
        g.add(g.assemble(f"def {name}({VALUES}):", em, body))
        node_fns[node_id] = name
    for node_id, parts in plan.says.items():
        name = f"_say{plan.position}_{len(say_fns)}"
        g.add(template_function(g, name, parts))
        if has_parts(parts):
            g.add(template_values_function(g, name + "_parts", parts))
        say_fns[node_id] = name
    ask_fns: dict[str, str] = {}
    for node_id, parts in plan.asks.items():
        name = f"_ask{plan.position}_{len(ask_fns)}"
        if has_parts(parts):
            g.add(template_values_function(g, name, parts))
        ask_fns[node_id] = name
    slots = g.b.env.slots

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
            asked = plan.asks.get(node_id)
            ask_template = None
            if asked is not None:
                ask_template = template_meta(asked, ns.get(ask_fns[node_id]))
            nodes[node_id] = TreeNodeMeta(
                id=node_id,
                # A question of text alone, its braces written {{ and }}, is that text.
                ask="".join(map(str, asked))
                if asked is not None and not ask_template
                else node.ask,
                answer=node.answer,
                answer_slot=slots[node.answer].index
                if node.answer is not None and node.answer in slots
                else None,
                gotos=tuple(br.goto for br in node.next or ()),
                branch=ns[node_fns[node_id]] if node_id in node_fns else None,
                reads=tuple(sorted(slots[p].index for p in reads if p in slots)),
                outcome=node.outcome,
                say=ns[say_fns[node_id]] if node_id in say_fns else None,
                say_template=template_meta(
                    plan.says.get(node_id, []), ns.get(say_fns.get(node_id, "") + "_parts")
                ),
                queue=node.queue,
                ask_template=ask_template,
            )
        return TreeMeta(id=tree.id, start=tree.start, nodes=nodes)

    return finish
