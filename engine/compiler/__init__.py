"""``compile_ruleset``: a ruleset document in, an immutable ``CompiledRuleset`` out.

The compiler is an ordered list of named stages over one ``Build``; each stage reads what the
ones before it produced and records problems instead of stopping at the first:

    load       parse     text → plain data + positions            (engine.source)
               shape     keys and value kinds                     (engine.model)
    check      fields    context declarations → types and slots
               tables    output types, input expressions, cells, evaluation order (before
                         rules: rules may read tables.<id>.<output>)
               rules     eligibility, escalation and alert conditions; message templates
               policy    the contact policy's durations
               trees     nodes, branches, links, cycles, reachability
               tests     the document's tests refer to things that exist
    analyze    analyze   overlapping rows of unique tables (errors); rows that never match
                         or never win, gaps of complete tables, contradicting conditions
                         (warnings, carried on the CompiledRuleset)   (engine.analysis)
    generate   generate  Python source from the checked IR, compiled once; how lookups are
                         shaped (rule buckets, guard runs, table indexes) is ``index``'s call

Problems from ``tables`` to ``tests`` are gathered together; ``analyze`` runs only on a
document with none, and ``generate`` only on a document the analysis found no error in. The
modules, in the order a document passes through them: ``load``, ``check``, ``analyze``,
``index``, ``generate`` (one module per kind of generated code); ``build`` holds what they
share.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from engine.compiler.analyze import analyze
from engine.compiler.build import Build
from engine.compiler.check import (
    check_fields,
    check_policy,
    check_rules,
    check_tables,
    check_tests,
    check_trees,
)
from engine.compiler.generate import generate
from engine.compiler.load import document_digest, parse, shape
from engine.errors import Problem, RulesetError
from engine.ruleset import CompiledRuleset

__all__ = ["STAGES", "compile_ruleset", "document_digest"]


def compile_ruleset(
    source: str | bytes | Mapping[str, Any],
    *,
    filename: str | None = None,
    strict: bool = True,
) -> CompiledRuleset:
    """Compile a ruleset document (YAML/JSON text or a mapping); raise RulesetError.

    What the analysis finds is in ``warnings`` of the result, except overlapping rows of a
    ``unique`` table, which refuse the document; with ``strict=False`` they are warnings too
    (for a revision stored before, which must keep serving, and for what tests the
    evaluation of such a table).
    """
    if not isinstance(source, str | bytes | Mapping):
        message = f"expected YAML or JSON text or a mapping, got {type(source).__name__}"  # type: ignore[unreachable]
        raise RulesetError([Problem(message, file=filename)])
    build = Build(filename, strict=strict)
    build.source = source
    for name, stage in STAGES:
        before = len(build.problems)
        stage(build)
        if (len(build.problems) > before and name in STOP_AFTER) or (
            build.problems and (name in ("tests", "analyze") or build.doc is None)
        ):
            raise RulesetError(build.problems)
    assert build.compiled is not None
    return build.compiled


STAGES: list[tuple[str, Callable[[Build], None]]] = [
    ("parse", parse),
    ("shape", shape),
    ("fields", check_fields),
    ("tables", check_tables),
    ("rules", check_rules),
    ("policy", check_policy),
    ("trees", check_trees),
    ("tests", check_tests),
    ("analyze", analyze),
    ("generate", generate),
]
# A stage in this set that finds problems stops the compile: what follows needs its output
# (an undeclared field would be reported again by every rule reading it). "shape" stops only
# when it produced no document; a duplicate id does not keep the rules from being checked.
# Everything found is reported before code generation.
STOP_AFTER = {"parse", "fields"}
