"""What the compile stages share: the ``Build`` each stage reads and adds to, and the plans of
tables and trees that the checks fill in and the generator reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.errors import Problem
from engine.expr import (
    BOOLEAN,
    Checked,
    Const,
    Environment,
    ExpressionError,
    Node,
    Type,
    check_expression,
)
from engine.hitpolicies import HIT_POLICIES, HitPolicy
from engine.model import Document, Table, Tree
from engine.parts import FieldMeta
from engine.ruleset import CompiledRuleset
from engine.source import Locator, Path
from engine.tables import Test


@dataclass
class Located:
    """A checked expression together with where it came from."""

    path: Path
    node: Node
    reads: frozenset[str]


@dataclass
class ComputedCell:
    """An output cell written as a template: computed, when its row is chosen, from what its
    ``{...}`` parts read. One part and nothing else (``native``) gives that part's value, of
    its type; text with parts gives the text, a string."""

    path: Path
    parts: list[str | Located]
    native: bool
    type: Type

    @property
    def reads(self) -> frozenset[str]:
        return frozenset(p for part in self.parts if not isinstance(part, str) for p in part.reads)


@dataclass
class TablePlan:
    model: Table
    position: int
    inputs: list[Located] = field(default_factory=list)
    input_types: list[Type] = field(default_factory=list)
    cells: list[list[Test]] = field(default_factory=list)
    # Each row's output values; a computed cell's place holds None (``computed`` has it).
    outputs: list[tuple[Any, ...]] = field(default_factory=list)
    output_names: list[str] = field(default_factory=list)
    ranks: list[tuple[int, ...]] | None = None  # each row's rank, for ``priority``
    depends_on: set[str] = field(default_factory=set)
    # (row, output) → its computed cell, for cells written as templates
    computed: dict[tuple[int, int], ComputedCell] = field(default_factory=dict)
    # The computed cells not checked (a problem was reported, or the table is on a cycle).
    unchecked: set[tuple[int, int]] = field(default_factory=set)
    # The tables the computed cells read, each with where it is first read.
    cell_tables: dict[str, Path] = field(default_factory=dict)

    @property
    def policy(self) -> HitPolicy:
        return HIT_POLICIES[self.model.hit]


@dataclass
class TreePlan:
    model: Tree
    position: int
    branches: dict[str, list[Located | None]] = field(default_factory=dict)
    says: dict[str, list[str | Located]] = field(default_factory=dict)
    asks: dict[str, list[str | Located]] = field(default_factory=dict)  # templated questions


class Build:
    """Everything the stages share."""

    def __init__(self, filename: str | None, *, strict: bool = True) -> None:
        self.filename = filename
        # Not strict: what the analysis would refuse is a warning (a stored revision).
        self.strict = strict
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []  # the analysis's findings that refuse nothing
        # Why the tests guard nothing (none, or one that checks nothing): warnings too, and
        # what a deploy refuses unless the author allows it.
        self.untested: list[Problem] = []
        self.source: Any = None
        self.data: Any = None
        self.locator = Locator(file=filename)
        self.doc: Document | None = None
        self.fields: dict[str, FieldMeta] = {}
        self.env = Environment(fields={})
        self.tables: list[TablePlan] = []
        self.table_order: list[TablePlan] = []
        self.eligibility: list[Located] = []
        self.escalation: list[Located] = []
        self.alerts: list[Located] = []
        self.messages: list[list[str | Located]] = []
        # Eligibility rule → its templated offer parameters: (path within params, parts).
        self.params: dict[int, list[tuple[tuple[str | int, ...], list[str | Located]]]] = {}
        self.trees: list[TreePlan] = []
        self.compiled: CompiledRuleset | None = None

    def problem(self, path: Path, message: str) -> None:
        self.problems.append(self.locator.problem(path, message))

    def expression(
        self, path: Path, text: str | bool, *, boolean: bool, offset: int = 0
    ) -> Located | None:
        """Check the expression at ``path``; record a located problem and return None on error."""
        if isinstance(text, bool):
            return Located(path, Const(BOOLEAN, False, text), frozenset())
        try:
            checked: Checked = check_expression(text, self.env, expect=BOOLEAN if boolean else None)
        except ExpressionError as exc:
            self.problems.append(
                self.locator.problem_in_text(path, exc.offset + offset, exc.message)
            )
            return None
        return Located(path, checked.node, checked.reads)

    def template(self, path: Path, text: str) -> list[str | Located] | None:
        """Split ``text`` into literal parts and checked ``{expression}`` parts."""
        parts: list[str | Located] = []
        literal: list[str] = []
        i, n, ok = 0, len(text), True
        while i < n:
            ch = text[i]
            if ch in "{}" and text.startswith(ch * 2, i):
                literal.append(ch)
                i += 2
                continue
            if ch == "}":
                self.problems.append(
                    self.locator.problem_in_text(
                        path, i, "unmatched '}' in template; write '}}' for a brace"
                    )
                )
                return None
            if ch == "{":
                end = text.find("}", i + 1)
                if end < 0:
                    self.problems.append(
                        self.locator.problem_in_text(
                            path, i, "unclosed '{' in template; write '{{' for a brace"
                        )
                    )
                    return None
                inner = text[i + 1 : end]
                checked = self.expression(path, inner, boolean=False, offset=i + 1)
                if checked is None:
                    ok = False
                else:
                    if literal:
                        parts.append("".join(literal))
                        literal = []
                    parts.append(checked)
                i = end + 1
                continue
            literal.append(ch)
            i += 1
        if literal:
            parts.append("".join(literal))
        return parts if ok else None


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
