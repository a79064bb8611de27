"""The ``analyze`` stage: what a document that type-checks still gets wrong, found by
``engine.analysis`` and located like every other problem.

Overlapping rows of a ``unique`` table are errors: they refuse the document, unless the
build is not strict (a revision stored before, compiled again), where they are warnings
too. Rows that never match, rows of a ``first`` table that can never win, gaps in a table
marked ``complete: true`` and conditions that contradict themselves are warnings, carried on
the compiled ruleset.
"""

from __future__ import annotations

from typing import Any

from engine.analysis import Column, analyze_table, contradiction
from engine.compiler.build import Build, Located
from engine.expr import Slot
from engine.source import Path

_SECTIONS = (
    ("eligibility", "eligibility rule", "fire"),
    ("escalation", "escalation rule", "apply"),
    ("alerts", "alert rule", "fire"),
)


def analyze(b: Build) -> None:
    assert b.doc is not None
    _tests(b)
    for plan in b.tables:
        columns = [
            Column(
                located.node.path
                if isinstance(located.node, Slot) and located.node.path in b.fields
                else None,
                plan.input_types[c],
            )
            for c, located in enumerate(plan.inputs)
        ]
        where: Path = ("tables", plan.position)
        model = plan.model
        for found in analyze_table(model.id, model.hit, columns, plan.cells, model.complete):
            problem = b.locator.problem((*where, *found.path), found.message)
            (b.problems if found.error and b.strict else b.warnings).append(problem)
    sections: list[tuple[str, str, str, list[Any], list[Located]]] = [
        (section, what, verb, getattr(b.doc, section), getattr(b, section))
        for section, what, verb in _SECTIONS
    ]
    for section, what, verb, rules, checked in sections:
        by_path = {c.path: c for c in checked}
        for i, rule in enumerate(rules):
            located = by_path.get((section, i, "when"))
            if located is not None:
                _condition(b, located, f"{what} {rule.id!r} can never {verb}")
    for tree in b.trees:
        for node_id, branches in tree.branches.items():
            for k, located in enumerate(branches):
                if located is not None:
                    _condition(b, located, f"branch {k + 1} of node {node_id!r} can never be taken")


def _tests(b: Build) -> None:
    """A document with no tests, and a test that checks nothing, guard nothing."""
    assert b.doc is not None
    if not b.doc.tests:
        b.untested.append(
            b.locator.problem(
                ("ruleset",),
                "the document has no tests: write some under tests:, or deploy it with "
                "allow_untested if that is meant",
            )
        )
    for i, test in enumerate(b.doc.tests):
        if not test.expect.model_fields_set:
            b.untested.append(
                b.locator.problem(
                    ("tests", i, "expect"),
                    f"test {test.name!r} checks nothing (expect: {{}}): name what it expects",
                )
            )


def _condition(b: Build, located: Located, what: str) -> None:
    reason = contradiction(located.node)
    if reason is not None:
        b.warnings.append(b.locator.problem(located.path, f"{what}: {reason}"))
