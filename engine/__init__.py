"""Frontline's engine: compile ruleset documents, evaluate them purely.

    from engine import compile_ruleset, RulesetError

    compiled = compile_ruleset(text_or_mapping)      # raises RulesetError; .errors has line/col
    decision = compiled.evaluate(context, answers=None, now=None, counters=None, trace=False)
    decision.to_dict()                               # the decision's JSON shape (docs/language.md)
    compiled.run_tests()                             # -> list of TestResult

Nothing in this package does I/O; it imports only the standard library, pydantic and PyYAML.
"""

from engine.compiler import compile_ruleset, document_digest
from engine.decision import Decision
from engine.errors import (
    DeployRefused,
    EvaluationError,
    FrontlineError,
    Problem,
    RulesetError,
    StoreCorrupt,
    StoreWriteFailed,
    Untested,
)
from engine.ports import (
    APPROVED,
    HISTORY_KEPT,
    PENDING,
    REJECTED,
    Provenance,
    Review,
    Routing,
    RulesetStore,
    StoredRevision,
)
from engine.registry import (
    Deployment,
    RoutingSuperseded,
    RulesetRegistry,
    RulesetRetired,
    UnknownRuleset,
    in_canary,
)
from engine.ruleset import CompiledRuleset
from engine.testing import TestResult

__all__ = [
    "APPROVED",
    "HISTORY_KEPT",
    "PENDING",
    "REJECTED",
    "CompiledRuleset",
    "Decision",
    "DeployRefused",
    "Deployment",
    "EvaluationError",
    "FrontlineError",
    "Problem",
    "Provenance",
    "Review",
    "Routing",
    "RoutingSuperseded",
    "RulesetError",
    "RulesetRegistry",
    "RulesetRetired",
    "RulesetStore",
    "StoreCorrupt",
    "StoreWriteFailed",
    "StoredRevision",
    "TestResult",
    "UnknownRuleset",
    "Untested",
    "compile_ruleset",
    "document_digest",
    "in_canary",
]
