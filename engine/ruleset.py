"""``CompiledRuleset``: the immutable result of compiling a document, and its ``evaluate``.

    evaluate(context, answers, now, counters, as_of, trace, tree, trigger)
      │   without trees, generated per ruleset (``entry``): a plain call (a context
      │   dict only) runs everything below in that one frame; any other goes to _evaluate
      │
      ├─ _read        generated: inputs → one tuple of values (fields, counters, now,
      │               table outputs), wrong-typed values reported and read as unknown
      ├─ eligibility  generated: ids of the rules that hold (bucketed by an equality test;
      │               when too few to bucket, runs of them guarded by one)
      ├─ escalation   generated: the first rule that holds, in (priority, position) order
      ├─ alerts       generated: the alert rules of the trigger that hold
      ├─ tree walk    per node, a generated function picks the branch
      └─ Decision     holds rule ids, indices and values; builds its JSON shape when asked

``evaluate`` reads no clock and no global state; the generated functions are pure.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from engine.decision import Asked, Decision, NextStep
from engine.errors import EvaluationError
from engine.generated import RAW_VALUES, TRIGGER_DECISION
from engine.parts import RulesetParts
from engine.testing import TESTS_BUDGET_SECONDS, TestResult, run_tests
from engine.times import parse_time


@dataclass(frozen=True, eq=False)
class CompiledRuleset(RulesetParts):
    """A compiled document: its parts and its evaluation. Immutable once built; safe to
    evaluate from any thread. ``at_revision`` gives the same ruleset numbered as a stored
    revision."""

    # Binds the entry point generated for this ruleset to it, when it has one (rulesets
    # without trees): called once per ruleset built, the result becomes its ``evaluate``.
    entry: Callable[[CompiledRuleset], Callable[..., Decision]] | None = field(
        default=None, repr=False
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.entry is not None:
            # An instance attribute shadowing the method; frozen guards only __setattr__.
            vars(self)["evaluate"] = self.entry(self)

    def at_revision(self, revision: int) -> CompiledRuleset:
        """This ruleset as revision ``revision`` of its name: a new ruleset (its own generated
        entry point bound to it), for the registry to serve once the store has numbered it."""
        return dataclasses.replace(self, revision=revision)

    @cached_property
    def _decide_trace(self) -> dict[str, Callable[..., Any]]:
        """The decide functions that also record a trace, compiled on first use."""
        return self.compile_trace()

    @property
    def description(self) -> str | None:
        return self.model.description

    def evaluate(
        self,
        context: Mapping[str, Any] | None = None,
        answers: Mapping[str, Any] | None = None,
        now: datetime | str | None = None,
        counters: Mapping[str, Mapping[str, int]] | None = None,
        trace: bool = False,
        *,
        as_of: Mapping[str, Any] | None = None,
        tree: str | None = None,
        trigger: str = TRIGGER_DECISION,
    ) -> Decision:
        """Evaluate the ruleset on one customer's inputs; pure and thread-safe.

        ``trigger`` other than ``"decision"`` evaluates only the alert rules listening for it
        (``"context_change"`` or ``"event"``).

        A compiled ruleset without trees answers this through an entry point generated with
        its rules (``entry``; same signature): the common call, a context dict and nothing
        else, runs the rules in that one frame and builds the decision with one store; every
        other call comes here.
        """
        return self._evaluate(context, answers, now, counters, trace, as_of, tree, trigger)

    def _evaluate(
        self,
        context: Mapping[str, Any] | None,
        answers: Mapping[str, Any] | None,
        now: datetime | str | None,
        counters: Mapping[str, Mapping[str, int]] | None,
        trace: bool,
        as_of: Mapping[str, Any] | None,
        tree: str | None,
        trigger: str,
    ) -> Decision:
        # Exact-class checks first: isinstance() against an ABC costs more than the rules.
        if context is None:
            context = {}
        elif context.__class__ is not dict and not isinstance(context, Mapping):
            raise EvaluationError("the context must be a JSON object")
        if answers is None:
            answers = context.get("answers")
        elif answers.__class__ is not dict and not isinstance(answers, Mapping):
            raise EvaluationError("answers must be a JSON object")
        when = None
        if now is not None:
            when = parse_time(now)
            if when is None:
                raise EvaluationError(f"invalid now {now!r}: expected an RFC 3339 time")
        if (
            counters is not None
            and counters.__class__ is not dict
            and not isinstance(counters, Mapping)
        ):
            raise EvaluationError("counters must map event types to {window: count}")
        decide = self.decide.get(trigger)
        if decide is None:
            raise EvaluationError(
                f"unknown trigger {trigger!r}; expected decision, context_change, event or timer"
            )
        records: list[tuple[int, int, bool | None]] | None = None
        try:
            if trace:
                records = []
                raw = self._decide_trace[trigger](context, answers, counters, when, records)
            else:
                raw = decide(context, answers, counters, when)
            step = (
                self._walk(tree, raw[RAW_VALUES])
                if self.trees and trigger == TRIGGER_DECISION
                else None
            )
        except (ArithmeticError, ValueError, RecursionError) as exc:
            raise self._failed(exc) from None
        if tree is not None and step is None and tree not in self.trees:
            raise EvaluationError(f"ruleset {self.name!r} has no tree {tree!r}")
        return Decision(self, raw, Asked(step, when, as_of, trigger, records))

    def _failed(self, exc: Exception) -> EvaluationError:
        return EvaluationError(
            f"ruleset {self.name!r} could not be evaluated on these inputs: {exc}"
        )

    def _walk(self, tree_id: str | None, values: tuple[Any, ...]) -> NextStep:
        if tree_id is None:
            tree = next(iter(self.trees.values()))
        else:
            found = self.trees.get(tree_id)
            if found is None:
                raise EvaluationError(f"ruleset {self.name!r} has no tree {tree_id!r}")
            tree = found
        nodes = tree.nodes
        node = nodes[tree.start]
        path: list[str] = []
        reads: tuple[int, ...] = ()
        for _ in range(len(nodes)):
            path.append(node.id)
            if node.outcome is not None or (
                node.answer_slot is not None and values[node.answer_slot] is None
            ):
                return NextStep(tree, node, path, reads, None)
            taken = node.branch(values)  # type: ignore[misc]  # routing nodes have one
            reads += node.reads
            if taken < 0:
                return NextStep(tree, node, path, reads, f"no branch of node {node.id!r} holds")
            node = nodes[node.gotos[taken]]
        raise AssertionError("trees are checked acyclic at compile time")  # pragma: no cover

    def run_tests(
        self, clock: Callable[[], float] | None = None, budget: float | None = None
    ) -> list[TestResult]:
        """Run the document's own tests; one result per test, in document order. Given a
        ``clock``, they share a time budget (``engine.testing.TESTS_BUDGET_SECONDS`` unless
        ``budget`` is given)."""
        budget = TESTS_BUDGET_SECONDS if budget is None else budget
        return run_tests(self.evaluate, self.model.tests, clock, budget)
