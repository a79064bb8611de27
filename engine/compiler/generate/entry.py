"""The entry points: one decide function per trigger, and for a ruleset without trees the
plain ``evaluate`` itself, which runs the rules in its own frame.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.codegen import Emitter, FunctionWriter, with_globals
from engine.compiler.generate.output import Output
from engine.compiler.generate.reads import prelude
from engine.compiler.generate.rules import collect_inline, emit_rule
from engine.decision import plain_decision_class
from engine.generated import (
    DECIDE_PARAMS,
    ENTRY_DECISION,
    ENTRY_EVALUATE,
    ENTRY_FAILED,
    ENTRY_PARAMS,
    PLAIN_ENTRY,
    TABLE_OUTPUTS,
    TRIGGER_DECISION,
    VALUES,
    raw_tuple,
)
from engine.ruleset import CompiledRuleset


def decide_function(g: Output, name: str, trigger: str, trace: bool, entry: bool = False) -> str:
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
    b = g.b
    assert b.doc is not None
    if entry:
        w = FunctionWriter(f"def {name}({ENTRY_PARAMS}):")
        w.line(
            "if context.__class__ is not _dict or answers is not None or now is not None"
            " or counters is not None or trace is not False or as_of is not None"
            f" or tree is not None or trigger != {TRIGGER_DECISION!r}:"
        )
        w.indent()
        w.line(
            f"return {ENTRY_EVALUATE}(context, answers, now, counters, trace, as_of, tree, trigger)"
        )
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
        w = FunctionWriter(f"def {name}({DECIDE_PARAMS}{', tr' if trace else ''}):")

    matches = [f"m{p.position}" for p in b.tables]

    def result(escalation: int) -> str:
        raw = raw_tuple(VALUES, "el", "al", str(escalation), "inv", matches)
        if entry:
            return f"_dec = _new({ENTRY_DECISION}); _dec._raw = ({raw}); return _dec"
        return f"return {raw}"

    # Invalid inputs are rare: a tuple, replaced when one is found, allocates nothing.
    w.line("inv = ()")
    prelude(g, w, exact=entry)
    for line in _collected(g, trigger, trace):
        w.line(line)
    em = Emitter(g.ns)
    rules = b.doc.escalation
    order = sorted(
        (k for k in range(len(b.escalation)) if trigger in rules[k].on),
        key=lambda k: (rules[k].priority, k),
    )
    for k in order:
        node = b.escalation[k].node
        emit_rule(g, w, em, k, node, trace, 1, result(k))
    w.line(result(-1))
    if entry:
        w.dedent()
        w.line("except (ArithmeticError, ValueError, RecursionError) as exc:")
        w.indent()
        w.line(f"raise {ENTRY_FAILED}(exc) from None")
    return w.source()


def _collected(g: Output, trigger: str, trace: bool) -> list[str]:
    """The lines that collect a trigger's eligible and alert rules into ``el`` and ``al``.

    Generated once per (trigger, trace) and shared by the decide function and the entry
    point, so that the index buckets they call are generated and compiled once.
    """
    key = (trigger, trace)
    found = g.collected.get(key)
    if found is not None:
        return found
    b = g.b
    assert b.doc is not None
    w = FunctionWriter("")
    w.depth = 0
    em = Emitter(g.ns)
    if trigger == "decision" and b.eligibility:
        w.line("el = []")
        collect_inline(g, w, em, "el", list(enumerate(b.eligibility)), trace, 0)
    else:
        w.line("el = ()")
    alerts = [(k, r) for k, r in enumerate(b.alerts) if trigger in b.doc.alerts[k].on]
    if alerts:
        w.line("al = []")
        collect_inline(g, w, em, "al", alerts, trace, 2)
    else:
        w.line("al = ()")
    found = g.collected[key] = w.lines[1:]
    return found


def bind_entry(ns: dict[str, Any], ruleset: CompiledRuleset) -> Callable[..., Any]:
    """The generated plain entry point, bound to ``ruleset``: the calls it does not answer
    itself go to that ruleset's ``_evaluate``, and its decisions are of that ruleset."""
    bound = {
        ENTRY_EVALUATE: ruleset._evaluate,
        ENTRY_FAILED: ruleset._failed,
        ENTRY_DECISION: plain_decision_class(ruleset, ns[TABLE_OUTPUTS]),
    }
    return with_globals(ns[PLAIN_ENTRY], **bound)
