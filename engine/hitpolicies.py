"""Hit policies: what a decision table answers when several rows, one row or none match.

Each policy is one object, found by its name in ``HIT_POLICIES``, that knows all of it:

    check        what the table must declare for it, at deploy (``priority`` needs its outputs'
                 values in order; only ``collect`` takes an ``aggregate``)
    single       whether the match function stops at the first matching row and returns its
                 position (or -1), rather than every matching position
    read_type    the type a rule reading ``tables.<id>.<output>`` sees
    resolver     matches → one value per output, what rules read
    outputs      matches → ``{output: value}`` as the decision shows it, None when no row won
    rows         matches → the matching row positions, for a trace
    conflict     matches and the rows' outputs → an error for the decision when they break
                 the policy, or None
    outputs_at   matches and the rows as one evaluation gives them → what ``outputs`` gives,
                 for a table with computed output cells (``RowsAt``)

    unique        at most one row may match; several is an error and the outputs are unknown
    any           several rows may match if their outputs agree; rows that disagree are an
                  error and the outputs are unknown
    first         the first matching row in document order wins
    priority      of the matching rows, the one whose outputs come first in the declared
                  ``values`` wins
    collect       every matching row, in order: each output is a list, or with ``aggregate``
                  (count, sum, min, max) one number
    rule_order    every matching row, in order: each output is a list
    output_order  every matching row, ordered by its outputs' place in the declared
                  ``values`` (first output first; rows that tie keep their order): each
                  output is a list
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from engine.expr import INTEGER, NUMBER, Type, list_of
from engine.model import Table
from engine.runtime import finite_sum

# Reports a problem at a path below the table (such as ``("aggregate",)``).
Report = Callable[[tuple[str | int, ...], str], None]
Rows = Sequence[tuple[Any, ...]]  # each row's output values, in row order


class RowsAt(Sequence[tuple[Any, ...]]):
    """The output rows of a table with computed cells, as one evaluation gives them: row
    ``r`` is its literal values, or for a row with computed cells what its generated
    function (``cells[r]``) gives on ``args``, the values its cells read. A row is evaluated
    when a policy first reads it, so only matching rows are (a policy reads no other), and
    once.

    Tables of literal outputs pass their rows (a tuple of tuples) instead, so nothing here
    is on their path.
    """

    __slots__ = ("args", "cells", "done", "static", "width")

    def __init__(
        self,
        static: Rows,
        cells: Mapping[int, Callable[[tuple[Any, ...]], tuple[Any, ...]]],
        args: tuple[Any, ...],
        width: int,
    ) -> None:
        self.static = static
        self.cells = cells
        self.args = args
        self.width = width
        self.done: dict[int, tuple[Any, ...]] = {}

    def __getitem__(self, r: int) -> tuple[Any, ...]:  # type: ignore[override]
        cell = self.cells.get(r)
        if cell is None:
            return self.static[r]
        found = self.done.get(r)
        if found is None:
            found = self.done[r] = cell(self.args)
        return found

    def __len__(self) -> int:
        return len(self.static)


def _width(rows: Rows) -> int:
    """How many outputs each row has (without evaluating a row of computed cells)."""
    if isinstance(rows, RowsAt):
        return rows.width
    return len(rows[0]) if rows else 0


class HitPolicy:
    """A policy whose matches are every matching row; subclasses say what wins."""

    name: ClassVar[str]
    single: ClassVar[bool] = False
    # Whether ``conflict`` can find anything (a decision skips asking otherwise).
    conflicts: ClassVar[bool] = False
    # Whether rows are ranked by their outputs' declared ``values`` (priority, output order).
    ranks_by_values: ClassVar[bool] = False

    def check(self, table: Table, report: Report) -> None:
        """Report what the table declares that this policy does not take."""
        if table.aggregate is not None:
            report(("aggregate",), "aggregate applies only to hit: collect")

    def ranks(
        self,
        table: Table,
        rows: Rows,
        values: Sequence[Sequence[Any] | None],
        report: Report,
    ) -> list[tuple[int, ...]] | None:
        """Each row's rank, for a policy that orders rows by their outputs (None for the
        others), reporting what keeps it from ranking them. ``rows`` are the rows' output
        values; ``values`` each output's declared values, or None."""
        if not self.ranks_by_values:
            return None
        return _rank_by_values(self.name, table, rows, values, report)

    def read_type(self, aggregate: str | None, column: Type) -> Type:
        return column

    def resolver(
        self, rows: Rows, ranks: list[tuple[int, ...]] | None, aggregate: str | None
    ) -> Callable[[Any], tuple[Any, ...]]:
        raise NotImplementedError

    def outputs(
        self, names: Sequence[str], rows: Rows, resolve: Callable[[Any], tuple[Any, ...]]
    ) -> Callable[[Any], dict[str, Any] | None]:
        """Matches → the decision's ``{output: value}``; None when no single row won."""
        won = self.won

        def outputs(m: Any) -> dict[str, Any] | None:
            return dict(zip(names, resolve(m), strict=True)) if won(m) else None

        return outputs

    def outputs_at(
        self,
        names: Sequence[str],
        matches: Any,
        rows: RowsAt,
        ranks: list[tuple[int, ...]] | None,
        aggregate: str | None,
    ) -> dict[str, Any] | None:
        """What ``outputs`` gives, for a table with computed cells: ``rows`` are one
        evaluation's, so the resolver is made for them (it reads only matching rows)."""
        if not self.won(matches):
            return None
        return dict(zip(names, self.resolver(rows, ranks, aggregate)(matches), strict=True))

    def won(self, matches: Any) -> bool:
        """Whether the matches give the table outputs (rather than unknown)."""
        return True

    def rows(self, matches: Any) -> list[int]:
        return list(matches)

    def conflict(self, matches: Any, rows: Rows) -> str | None:
        return None


def _unknown(rows: Rows) -> tuple[Any, ...]:
    return (None,) * _width(rows)


class Unique(HitPolicy):
    name = "unique"
    conflicts = True

    def resolver(
        self, rows: Rows, ranks: list[tuple[int, ...]] | None, aggregate: str | None
    ) -> Callable[[Any], tuple[Any, ...]]:
        unknown = _unknown(rows)
        return lambda m: rows[m[0]] if len(m) == 1 else unknown

    def won(self, matches: Any) -> bool:
        return len(matches) == 1

    def conflict(self, matches: Any, rows: Rows) -> str | None:
        if len(matches) < 2:
            return None
        return f"hit policy unique, but rows {', '.join(str(r + 1) for r in matches)} all match"


class AnyAgreeing(HitPolicy):
    """``any``: the matching rows must agree. An output column holds one type (integers and
    numbers mix, and compare as numbers), so agreeing is the rows' outputs being equal."""

    name = "any"
    conflicts = True

    def resolver(
        self, rows: Rows, ranks: list[tuple[int, ...]] | None, aggregate: str | None
    ) -> Callable[[Any], tuple[Any, ...]]:
        unknown = _unknown(rows)
        return lambda m: rows[m[0]] if m and _agree(rows, m) else unknown

    def outputs(
        self, names: Sequence[str], rows: Rows, resolve: Callable[[Any], tuple[Any, ...]]
    ) -> Callable[[Any], dict[str, Any] | None]:
        def outputs(m: Any) -> dict[str, Any] | None:
            if not m or not _agree(rows, m):
                return None
            return dict(zip(names, rows[m[0]], strict=True))

        return outputs

    def outputs_at(
        self,
        names: Sequence[str],
        matches: Any,
        rows: RowsAt,
        ranks: list[tuple[int, ...]] | None,
        aggregate: str | None,
    ) -> dict[str, Any] | None:
        return self.outputs(names, rows, self.resolver(rows, ranks, aggregate))(matches)

    def won(self, matches: Any) -> bool:
        return bool(matches)

    def conflict(self, matches: Any, rows: Rows) -> str | None:
        if len(matches) < 2 or _agree(rows, matches):
            return None
        return (
            f"hit policy any, but rows {', '.join(str(r + 1) for r in matches)} all match "
            "and their outputs differ"
        )


def _agree(rows: Rows, matches: Sequence[int]) -> bool:
    first = rows[matches[0]]
    return all(rows[r] == first for r in matches[1:])


class First(HitPolicy):
    name = "first"
    single = True

    def resolver(
        self, rows: Rows, ranks: list[tuple[int, ...]] | None, aggregate: str | None
    ) -> Callable[[Any], tuple[Any, ...]]:
        unknown = _unknown(rows)
        return lambda m: rows[m] if m >= 0 else unknown

    def outputs(
        self, names: Sequence[str], rows: Rows, resolve: Callable[[Any], tuple[Any, ...]]
    ) -> Callable[[Any], dict[str, Any] | None]:
        built = [dict(zip(names, row, strict=True)) for row in rows]
        return lambda m: dict(built[m]) if m >= 0 else None

    def won(self, matches: Any) -> bool:
        return bool(matches >= 0)

    def rows(self, matches: Any) -> list[int]:
        return [matches] if matches >= 0 else []


class Priority(HitPolicy):
    name = "priority"
    ranks_by_values = True

    def resolver(
        self, rows: Rows, ranks: list[tuple[int, ...]] | None, aggregate: str | None
    ) -> Callable[[Any], tuple[Any, ...]]:
        assert ranks is not None
        unknown = _unknown(rows)
        return lambda m: rows[min(m, key=ranks.__getitem__)] if m else unknown

    def won(self, matches: Any) -> bool:
        return bool(matches)


def _rank_by_values(
    name: str,
    table: Table,
    rows: Rows,
    values: Sequence[Sequence[Any] | None],
    report: Report,
) -> list[tuple[int, ...]] | None:
    """Each row's rank: the places of its outputs in their declared ``values``, first output
    first (outputs without ``values`` do not rank); None when no output declares values."""
    if all(v is None for v in values):
        report(
            ("outputs",),
            f"hit: {name} needs the outputs' values in priority order: "
            "outputs: [{name: action, values: [block, review, allow]}]",
        )
        return None
    names = [o if isinstance(o, str) else o.name for o in table.outputs]
    ranks = []
    for r, row in enumerate(rows):
        rank = []
        for c, declared in enumerate(values):
            if declared is None:
                continue
            if row[c] not in declared:
                report(
                    ("rows", r, len(table.inputs) + c),
                    f"{row[c]!r} is not among output {names[c]!r}'s values",
                )
                continue
            rank.append(list(declared).index(row[c]))
        ranks.append(tuple(rank))
    return ranks


class RuleOrder(HitPolicy):
    name = "rule_order"

    def read_type(self, aggregate: str | None, column: Type) -> Type:
        return list_of(column)

    def resolver(
        self, rows: Rows, ranks: list[tuple[int, ...]] | None, aggregate: str | None
    ) -> Callable[[Any], tuple[Any, ...]]:
        width = _width(rows)
        return lambda m: tuple([rows[r][c] for r in m] for c in range(width))


class Collect(RuleOrder):
    name = "collect"
    AGGREGATES = ("count", "sum", "min", "max")

    def check(self, table: Table, report: Report) -> None:
        pass  # any aggregate; its name is checked with the document's shape

    def read_type(self, aggregate: str | None, column: Type) -> Type:
        if aggregate == "count":
            return INTEGER
        if aggregate is not None:
            return column if column.numeric else NUMBER
        return list_of(column)

    def resolver(
        self, rows: Rows, ranks: list[tuple[int, ...]] | None, aggregate: str | None
    ) -> Callable[[Any], tuple[Any, ...]]:
        if aggregate is None:
            return super().resolver(rows, ranks, aggregate)
        width = _width(rows)
        if aggregate == "count":
            return lambda m: (len(m),) * width

        def aggregated(m: list[int]) -> tuple[Any, ...]:
            result: list[Any] = []
            for c in range(width):
                values = [rows[r][c] for r in m if rows[r][c] is not None]
                if not values:
                    result.append(None)
                elif aggregate == "sum":
                    result.append(finite_sum(values))
                else:
                    result.append(min(values) if aggregate == "min" else max(values))
            return tuple(result)

        return aggregated


class OutputOrder(RuleOrder):
    name = "output_order"
    ranks_by_values = True

    def resolver(
        self, rows: Rows, ranks: list[tuple[int, ...]] | None, aggregate: str | None
    ) -> Callable[[Any], tuple[Any, ...]]:
        assert ranks is not None
        in_order = super().resolver(rows, ranks, aggregate)
        # sorted() is stable: rows that rank alike keep their document order.
        return lambda m: in_order(sorted(m, key=ranks.__getitem__))


HIT_POLICIES: dict[str, HitPolicy] = {
    policy.name: policy
    for policy in (
        Unique(),
        AnyAgreeing(),
        First(),
        Priority(),
        Collect(),
        RuleOrder(),
        OutputOrder(),
    )
}
