"""Running a document's own ``tests:``.

A test names only what it checks: ``expect`` keys that are absent are not compared. Rule-id
lists compare as sets (order of firing is not the contract); ``tables`` and ``next_step``
compare only the keys written. The one exception is ``errors``: a decision that carries an
error (a ``unique`` table whose rows overlap, arithmetic that failed, a tree with no branch to
take) fails its test unless ``expect.errors`` names that error, so an error no author meant
never passes unnoticed.

Each result records what its test reached: the rules that fired, the table rows that matched,
the tree nodes walked. ``Coverage.of`` gathers what no test reached.

Given a clock, the tests of one document share a time budget (``TESTS_BUDGET_SECONDS``):
once it is spent, the test that spent it and every later one fail, so a deploy whose tests run
too long is refused rather than holding up the server. The engine reads no clock of its own;
the registry is given one by the service. Each evaluation is itself bounded (``matches()`` runs
in linear time on values of bounded length), so the budget is reached only by documents with
very many or very large tests.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.errors import EvaluationError

if TYPE_CHECKING:
    from engine.decision import Decision
    from engine.model import Document, Expectation, TestCase

# A compiled ruleset's ``evaluate``.
Evaluate = Callable[..., "Decision"]


@dataclass(frozen=True)
class TestResult:
    """The result of one document test; ``failures`` says what differed, one line each;
    ``reached`` what the test's decision reached (see ``Coverage``)."""

    name: str
    passed: bool
    failures: list[str] = field(default_factory=list)
    reached: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "failures": self.failures}


TESTS_BUDGET_SECONDS = 10.0


def run_tests(
    evaluate: Evaluate,
    tests: Sequence[TestCase],
    clock: Callable[[], float] | None = None,
    budget: float = TESTS_BUDGET_SECONDS,
) -> list[TestResult]:
    """Run ``tests`` (a document's, in document order) with the document's compiled
    ``evaluate``; with a ``clock`` (seconds), within ``budget`` seconds for them all."""
    if clock is None:
        return [run_test(evaluate, test) for test in tests]
    results: list[TestResult] = []
    deadline = clock() + budget
    for test in tests:
        if clock() >= deadline:
            spent = f"not run: the document's tests took more than their {budget:g} s budget"
            results.append(TestResult(test.name, False, [spent]))
            continue
        result = run_test(evaluate, test)
        if clock() >= deadline:
            spent = f"took the document's tests past their {budget:g} s budget"
            result = TestResult(test.name, False, [*result.failures, spent])
        results.append(result)
    return results


def run_test(evaluate: Evaluate, test: TestCase) -> TestResult:
    try:
        decision = evaluate(
            test.context,
            answers=test.answers,
            now=test.now,
            counters=test.counters,
            as_of=test.as_of,
            tree=test.tree,
            trigger=test.trigger,
        )
    except EvaluationError as exc:
        return TestResult(test.name, False, [f"evaluation failed: {exc}"])
    got = decision.to_dict()
    expect = test.expect
    failures = [
        *_rule_failures(expect, decision, got),
        *_table_failures(expect.tables or {}, got["tables"]),
        *_step_failures(expect, got["next_step"]),
        *_error_failures(expect.errors or [], got["errors"]),
    ]
    return TestResult(test.name, not failures, failures, _reached(decision, got))


def _error_failures(expected: list[str], errors: list[dict[str, Any]]) -> list[str]:
    """Every error the decision carries must be expected, and every expected one carried."""
    failures = []

    def matches(wanted: str, error: dict[str, Any]) -> bool:
        named = [str(v) for k, v in error.items() if k != "error"]
        return wanted in named or wanted in str(error.get("error", ""))

    for error in errors:
        if not any(matches(wanted, error) for wanted in expected):
            what = ", ".join(f"{k} {v!r}" for k, v in error.items() if k != "error")
            failures.append(
                f"errors: the decision carries an error ({what}: {error.get('error')}); "
                "list it under expect.errors if it is meant"
            )
    for wanted in expected:
        if not any(matches(wanted, error) for error in errors):
            failures.append(f"errors: expected an error matching {wanted!r}, got none")
    return failures


def _reached(decision: Decision, got: dict[str, Any]) -> frozenset[str]:
    """What one decision reached, as ``Coverage`` names it."""
    reached = {f"eligibility:{rule}" for rule in decision.eligible_rules}
    reached.update(f"alerts:{rule}" for rule in decision.alert_rules)
    if decision.escalation_rule is not None:
        reached.add(f"escalation:{decision.escalation_rule}")
    for table, rows in decision.matched_rows.items():
        reached.update(f"tables:{table}:{row}" for row in rows)
    step = got["next_step"]
    if step is not None:
        reached.update(f"trees:{step['tree']}:{node}" for node in (*step["path"], step["node"]))
    return frozenset(reached)


@dataclass(frozen=True)
class Coverage:
    """What a document's tests reached, of its rules (that fired, or for escalation won),
    table rows (that matched) and tree nodes (that a walk visited); and what none reached."""

    reached: int
    total: int
    unreached: dict[str, Any]

    @classmethod
    def of(cls, document: Document | None, results: Sequence[TestResult]) -> Coverage:
        """What ``results`` reached of ``document`` (of nothing, when there is none)."""
        reached = frozenset().union(*(r.reached for r in results))
        items: dict[str, list[str]] = {
            section: [rule.id for rule in getattr(document, section, ())]
            for section in ("eligibility", "escalation", "alerts")
        }
        unreached: dict[str, Any] = {
            section: [rule for rule in ids if f"{section}:{rule}" not in reached]
            for section, ids in items.items()
        }
        total = sum(len(ids) for ids in items.values())
        rows: dict[str, list[int]] = {}
        for table in document.tables if document else ():
            total += len(table.rows)
            missed = [
                k for k in range(1, len(table.rows) + 1) if f"tables:{table.id}:{k}" not in reached
            ]
            if missed:
                rows[table.id] = missed
        nodes: dict[str, list[str]] = {}
        for tree in document.trees if document else ():
            total += len(tree.nodes)
            missed_nodes = [n for n in tree.nodes if f"trees:{tree.id}:{n}" not in reached]
            if missed_nodes:
                nodes[tree.id] = missed_nodes
        unreached["table_rows"] = rows
        unreached["tree_nodes"] = nodes
        missed_count = (
            sum(len(unreached[s]) for s in items)
            + sum(map(len, rows.values()))
            + sum(map(len, nodes.values()))
        )
        return cls(reached=total - missed_count, total=total, unreached=unreached)

    @property
    def percent(self) -> float:
        return round(100.0 * self.reached / self.total, 1) if self.total else 100.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "reached": self.reached,
            "total": self.total,
            "percent": self.percent,
            "unreached": self.unreached,
        }

    def lines(self) -> list[str]:
        """What no test reached, one line each, as ``frontline test --coverage`` prints it."""
        out: list[str] = []
        for section in ("eligibility", "escalation", "alerts"):
            out.extend(f"{section} rule {rule!r}" for rule in self.unreached[section])
        for table, rows in self.unreached["table_rows"].items():
            out.append(f"table {table!r} rows {', '.join(map(str, rows))}")
        for tree, nodes in self.unreached["tree_nodes"].items():
            out.append(f"tree {tree!r} nodes {', '.join(nodes)}")
        return out


def _rule_failures(expect: Expectation, decision: Decision, got: dict[str, Any]) -> list[str]:
    """What differs in the rule ids and field lists ``expect`` names (compared as sets)."""
    given = expect.model_fields_set
    failures: list[str] = []

    def compare_ids(key: str, actual: list[str]) -> None:
        wanted = getattr(expect, key)
        if key in given and sorted(wanted or []) != sorted(actual):
            failures.append(f"{key}: expected {sorted(wanted or [])}, got {sorted(actual)}")

    compare_ids("eligible", decision.eligible_rules)
    compare_ids("alerts", decision.alert_rules)
    if "escalation" in given and expect.escalation != decision.escalation_rule:
        failures.append(
            f"escalation: expected {expect.escalation!r}, got {decision.escalation_rule!r}"
        )
    for key in ("missing_fields", "stale_fields"):
        compare_ids(key, got[key])
    if "invalid_fields" in given:
        compare_ids("invalid_fields", [f["field"] for f in got["invalid_fields"]])
    return failures


def _table_failures(expected: dict[str, Any], got: dict[str, Any]) -> list[str]:
    """What differs in the outputs of the tables named (only the outputs written)."""
    failures: list[str] = []
    for table_id, outputs in expected.items():
        actual = got.get(table_id)
        if outputs is None or actual is None:
            if outputs != actual:
                failures.append(f"tables.{table_id}: expected {outputs!r}, got {actual!r}")
            continue
        for name, value in outputs.items():
            if not _equal(actual.get(name), value):
                failures.append(
                    f"tables.{table_id}.{name}: expected {value!r}, got {actual.get(name)!r}"
                )
    return failures


def _step_failures(expect: Expectation, step: dict[str, Any] | None) -> list[str]:
    """What differs in the next step, if named (only the keys written)."""
    if "next_step" not in expect.model_fields_set:
        return []
    if expect.next_step is None or step is None:
        if expect.next_step != step:
            return [f"next_step: expected {expect.next_step!r}, got {step!r}"]
        return []
    return [
        f"next_step.{key}: expected {value!r}, got {step.get(key)!r}"
        for key, value in expect.next_step.items()
        if not _equal(step.get(key), value)
    ]


def _equal(actual: Any, expected: Any) -> bool:
    """Equality as JSON sees it: 500 equals 500.0, true is not 1."""
    if isinstance(actual, bool) or isinstance(expected, bool):
        return actual is expected
    return bool(actual == expected)
