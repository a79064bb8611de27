"""What a deploy finds wrong with a document that type-checks: rows and rules that cannot
mean what their author meant. Pure: it reads checked cells and IR, and returns findings.

    overlap        two rows of a ``unique`` table that one input matches at once, with
                   that input                                                      an error
    never matches  a row whose cells accept no value of their input                a warning
    shadowed       a row of a ``first`` table every input of which an earlier row takes
                                                                                   a warning
    gap            in a table marked ``complete: true``, inputs no row matches     a warning
    contradiction  a ``when:`` whose top-level ``and`` compares one field with literals in
                   ways that cannot all hold                                       a warning

Every finding is exact or left out: an error or a warning is only given when an input that
proves it exists (or, for a shadowed row or a contradiction, when no input can refute it).

**The number line.** A field's values are cut into *slots* by the literals its cells (or a
rule's comparisons) name: P0 < P1 < ... < Pk gives 2k + 1 slots, the stretch below P0, P0
itself, the stretch between P0 and P1, and so on (the layout ``tables.interval_index``
uses). Every unary test gives one answer on the whole of a slot, so a cell is a bitmask of
slots, ``Line.mask``, computed from the literals' positions without trying values. A slot
holding no value of the field's type is left out: no integer lies in ``(3..4)``, a point
2.5 holds no integer, and no string lies between ``"a"`` and ``"a\\x00"``. Each slot keeps one
value in it, a representative, which is what a witness prints. An ``enum`` string or a
boolean has its values as slots instead. A row is one mask per field (the intersection of its
cells when several columns read the same field), and for each slot the rows accepting it are
one bitmask of rows, built by one sweep over the rows' masks.

**Overlaps** split the rows by the slots of one field at a time: the rows sharing a slot of
every field pairwise overlap. A split reads the rows of one slot per stretch between the
edges of the rows being split (or of every slot, when that is fewer), or, for a few rows,
cuts the slots by each row's; sets of rows already split at a field are not split again, and
a set of up to ``PAIRWISE`` rows is checked pair by pair. A table whose rows never overlap
falls apart into single rows at the first fields, whatever its size. **Shadowed rows** split
each row's own slots, field by field, by the earlier rows; the row is shadowed when every
part meets an earlier row (a row with ``-`` in every column shadows all after it at once).
**Gaps** keep the slots no row accepts, field by field under the slots the fields before
them fix. Each search stops after ``BUDGET`` steps (about a quarter of a second), reporting
only what it proved, and a table whose rows × slots of one field exceed ``MAX_BITS`` (each
row's slots are one bitmask) is not analysed, which its one warning says.

**Inputs that are not plain fields** (``customer.score * 100``, ``tables.x.y``) may not take
every value of their type, so their cells are read only where that is safe: for an overlap a
cell must be ``-``; for a shadowed row the cells must be the same test or ``-``; for a gap every
cell counts as ``-``. An unknown value matches only ``-``: it is an input for shadowing (a row
with ``-`` where the earlier rows test a value still matches it) and no input for gaps.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from engine.expr import BoolOp, Compare, Const, ListConst, Node, Not, Slot, Type
from engine.tables import (
    AnyTest,
    CmpTest,
    EqTest,
    InTest,
    NotTest,
    OrTest,
    RangeTest,
    Test,
    test_matches,
)

# Findings of one kind listed per table; the rest are counted in one more finding.
MAX_LISTED = 10
# Steps (a set of rows split by one slot) one search of one table may take.
BUDGET = 100_000
# The most rows × slots of one field a table may have to be analysed (each row's slots are a
# bitmask): 10,000 rows with 13,000 distinct literals in one column's cells. Beyond, the table
# gets one warning saying it was not analysed.
MAX_BITS = 1 << 28
# Sets of rows this small are checked pair by pair rather than split further.
PAIRWISE = 12

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Finding:
    """One thing the analysis found: where (a path below the table or the rule), what, and
    whether it refuses the document."""

    path: Path
    message: str
    error: bool = False


@dataclass(frozen=True)
class Column:
    """A table input as the analysis reads it: the declared field it is (None for any other
    expression) and its type."""

    field: str | None
    type: Type


# -- the number line --------------------------------------------------------------------------

_EMPTY: Any = object()  # a slot holding no value of the type


def _literals(test: Test, into: set[Any]) -> None:
    if isinstance(test, EqTest | CmpTest):
        into.add(test.value)
    elif isinstance(test, RangeTest):
        into.add(test.low)
        into.add(test.high)
    elif isinstance(test, InTest):
        into.update(test.values)
    elif isinstance(test, OrTest | NotTest):
        for t in test.tests:
            _literals(t, into)


def _span(low: int, high: int) -> int:
    """The slots low ≤ s < high."""
    return ((1 << (high - low)) - 1) << low if high > low else 0


def _bits(mask: int) -> Iterator[int]:
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


def accepts_every_value(test: Test) -> bool:
    """Whether ``test`` accepts every known value (``-``, or a disjunction holding ``-``)."""
    if isinstance(test, AnyTest):
        return True
    return isinstance(test, OrTest) and any(accepts_every_value(t) for t in test.tests)


@functools.lru_cache(maxsize=256)
def _finite_values(enum: frozenset[str] | None) -> tuple[list[Any], dict[Any, int]]:
    """The values of an enum (sorted), or of a boolean, and each one's slot."""
    values: list[Any] = sorted(enum) if enum else [False, True]
    return values, {v: s for s, v in enumerate(values)}


def _text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


class Line:
    """The values of one field, cut into slots on which every test it is built from gives one
    answer; see the module docstring."""

    def __init__(self, type_: Type, tests: Iterable[Test]) -> None:
        self.kind = type_.kind
        self.finite = type_.kind == "boolean" or type_.enum is not None
        self._cache: dict[Test, int] = {}
        if self.finite:
            values, self.index = _finite_values(type_.enum)
            self.points: list[Any] = values
            self.reps: list[Any] = values
            self.size = len(values)
            self.full = _span(0, self.size)
            self.stretches = self.at_points = 0
            return
        found: set[Any] = set()
        for test in tests:
            _literals(test, found)
        self.points = sorted(found)
        self.index = {p: i for i, p in enumerate(self.points)}
        self.size = 2 * len(self.points) + 1
        self.reps = [self._representative(s) for s in range(self.size)]
        self.full = int("".join("0" if r is _EMPTY else "1" for r in reversed(self.reps)), 2)
        k = len(self.points)
        self.stretches = ((1 << 2 * k + 2) - 1) // 3  # slots 0, 2, ..., 2k
        self.at_points = self.stretches << 1 & _span(0, self.size)  # slots 1, 3, ..., 2k - 1

    # A representative of each slot: a value of the type in it, or _EMPTY.
    def _representative(self, s: int) -> Any:
        points = self.points
        if s % 2:
            point = points[s // 2]
            if self.kind != "integer":
                return point
            return point if isinstance(point, int) else int(point) if point.is_integer() else _EMPTY
        low = points[s // 2 - 1] if s else None
        high = points[s // 2] if s // 2 < len(points) else None
        if self.kind == "string":
            return _string_between(low, high)
        return _number_between(low, high, integer=self.kind == "integer")

    def mask(self, test: Test) -> int:
        """The slots holding values ``test`` accepts."""
        return self.raw(test) & self.full

    def raw(self, test: Test) -> int:
        """The slots ``test`` accepts, those holding no value included: a range is one run
        of slots however many of them are empty (what ``_sweep`` wants)."""
        found = self._cache.get(test)
        if found is None:
            found = self._mask(test)
            self._cache[test] = found
        return found

    def _mask(self, test: Test) -> int:
        every = _span(0, self.size)
        if isinstance(test, AnyTest):
            return every
        if isinstance(test, OrTest | NotTest):
            inner = 0
            for t in test.tests:
                inner |= self._mask(t)
            return inner if isinstance(test, OrTest) else every & ~inner
        index = self.index
        if isinstance(test, EqTest | InTest):
            values = (test.value,) if isinstance(test, EqTest) else test.values
            if self.finite:
                return sum({1 << index[v] for v in values if v in index})
            return sum({1 << (2 * index[v] + 1) for v in values})
        if self.finite:
            return sum(1 << s for s, v in enumerate(self.points) if test_matches(test, v))
        if isinstance(test, CmpTest):
            at = 2 * index[test.value]
            low, high = {
                "<": (0, at + 1),
                "<=": (0, at + 2),
                ">": (at + 2, self.size),
                ">=": (at + 1, self.size),
            }[test.op]
            return _span(low, high)
        low = 2 * index[test.low] + (1 if test.low_inclusive else 2)
        high = 2 * index[test.high] + (2 if test.high_inclusive else 1)
        return _span(low, high)

    def witness(self, mask: int) -> Any:
        """One value in ``mask`` (not empty): a literal of the document when there is one."""
        if not self.finite:
            points = mask & self.at_points
            if points:
                mask = points
        return self.reps[(mask & -mask).bit_length() - 1]

    def runs(self, mask: int) -> list[tuple[int, int]]:
        """``mask`` as maximal runs of slots [a, b), joined across slots holding no value."""
        if self.finite:
            return [(s, s + 1) for s in _bits(mask)]
        filled = mask | (_span(0, self.size) & ~self.full)
        runs = []
        for a, b in _runs(filled):
            part = mask & _span(a, b)
            if part:
                low = (part & -part).bit_length() - 1
                runs.append((low, part.bit_length()))
        return runs

    def describe(self, field: str, mask: int) -> list[str]:
        """``mask`` in words, one phrase per run: ``customer.tier in ["gold", "silver"]``,
        ``customer.amount in [10..20)``; empty when it is every value."""
        if mask == self.full:
            return []
        if self.finite:
            values = [self.points[s] for s in _bits(mask)]
            if len(values) == 1:
                return [f"{field} = {_text(values[0])}"]
            return [f"{field} in {_listed(values)}"]
        stretches = self.full & self.stretches
        if self.kind == "string" and mask & stretches == stretches:
            # Strings no cell names, and some that one does: say which are named.
            named = [self.points[s // 2] for s in _bits(self.full & ~mask)]
            if len(named) == 1:
                return [f"{field} != {_text(named[0])}"]
            return [f"{field} not in {_listed(named)}"]
        return [self._interval(field, a, b) for a, b in self.runs(mask)]

    def _interval(self, field: str, a: int, b: int) -> str:
        points, last = self.points, b - 1
        low = None if a == 0 else (points[a // 2], True) if a % 2 else (points[a // 2 - 1], False)
        if last == self.size - 1:
            high = None
        elif last % 2:
            high = (points[last // 2], True)
        else:
            high = (points[last // 2], False)
        if low is None and high is None:
            return f"{field} any value"
        if low is None:
            assert high is not None
            return f"{field} {'<=' if high[1] else '<'} {_text(high[0])}"
        if high is None:
            return f"{field} {'>=' if low[1] else '>'} {_text(low[0])}"
        (lo, lo_in), (hi, hi_in) = low, high
        if self.kind == "integer":  # a bounded stretch of integers: its first and last
            lo, hi = (
                (int(lo) if lo_in else math.floor(lo) + 1),
                (int(hi) if hi_in else math.ceil(hi) - 1),
            )
            lo_in = hi_in = True
        if lo == hi and lo_in and hi_in:
            return f"{field} = {_text(lo)}"
        return f"{field} in {'[' if lo_in else '('}{_text(lo)}..{_text(hi)}{']' if hi_in else ')'}"


def _listed(values: list[Any]) -> str:
    """``["a", "b"]``, the first ten and how many more."""
    shown = ", ".join(_text(v) for v in values[:MAX_LISTED])
    more = len(values) - MAX_LISTED
    return f"[{shown}, … {more} more]" if more > 0 else f"[{shown}]"


def _runs(mask: int) -> list[tuple[int, int]]:
    """The maximal runs [a, b) of set bits of ``mask``."""
    edges = list(_bits(mask ^ (mask << 1)))
    return list(zip(edges[::2], edges[1::2], strict=True))


def _number_between(low: Any, high: Any, *, integer: bool) -> Any:
    """A number strictly between ``low`` and ``high`` (None: unbounded), an integer when one
    is there, else (for a ``number``) a short float; _EMPTY when there is none."""
    if low is None and high is None:
        return 0
    if low is None:
        return math.ceil(high) - 1
    if high is None:
        return math.floor(low) + 1
    least = math.floor(low) + 1
    if least < high:
        return least
    if integer:
        return _EMPTY
    try:
        middle = (low + high) / 2
    except OverflowError:  # pragma: no cover - ints beyond every float are never that close
        return _EMPTY
    if low < middle < high:
        return middle
    try:
        after = math.nextafter(float(low), math.inf)
    except OverflowError:  # pragma: no cover
        return _EMPTY
    while after <= low:
        after = math.nextafter(after, math.inf)
    return after if after < high else _EMPTY


_NICE_STRINGS = ("other", "x", "a", "z", "0")


def _string_between(low: str | None, high: str | None) -> Any:
    """A string strictly between ``low`` and ``high`` (None: unbounded); _EMPTY when there is
    none. The least string above ``low`` is ``low + "\\x00"``, so that decides."""
    candidates = [*_NICE_STRINGS, *((low + "x", low + "\x00") if low is not None else ("",))]
    for c in candidates:
        if (low is None or c > low) and (high is None or c < high):
            return c
    return _EMPTY


# -- the rows of one table, field by field ----------------------------------------------------


class _Group:
    """One field a table reads (in one or more columns), or one other input expression, as the
    rows see it in one search.

    ``own(r)`` is row r's slots as the row whose inputs are sought (what it may match),
    ``under(r)`` as any other row (what it surely matches); they differ only for an unknown
    value (slot ``unknown``, in the search for rows that never win) and for expressions.
    ``rows(s)`` are the rows that surely match slot s. A field's masks are made once per
    table (``_Field``) and shared by its searches."""

    def __init__(
        self,
        field: str | None,
        line: Line | None,
        raw: list[int],
        slots: int,
        own: list[int] | None = None,
        unknown: tuple[int, int, int] | None = None,
        swept: tuple[list[int], list[list[int]]] | None = None,
    ) -> None:
        self.field = field
        self.line = line
        self.raw = raw  # row → its slots, as under(); empty slots included, so ranges are runs
        self.slots = slots  # the slots searched: those holding a value (and unknown)
        self._own = own
        # unknown: (its slot's bit, the rows that may match it, the rows that surely do)
        self.unknown_bit, self.maybe, self.surely = unknown or (0, 0, 0)
        self.size = line.size if line is not None else slots.bit_length()  # known slots
        self._swept = swept

    def own(self, r: int) -> int:
        if self._own is not None:
            return self._own[r]
        mask = self.raw[r] & self.slots
        return mask | self.unknown_bit if self.maybe >> r & 1 else mask

    def under(self, r: int) -> int:
        mask = self.raw[r]
        return mask | self.unknown_bit if self.surely >> r & 1 else mask

    def rows(self, s: int) -> int:
        """The rows that surely match known slot ``s``."""
        if self._swept is None:
            self._swept = _sweep(self.raw, self.size)
        return self._swept[0][s]

    def edges(self, r: int) -> list[int]:
        """Where row ``r``'s runs of slots start and end."""
        if self._swept is None:
            self._swept = _sweep(self.raw, self.size)
        return self._swept[1][r]


def _sweep(masks: Sequence[int], size: int) -> tuple[list[int], list[list[int]]]:
    """Rows' slot masks → for each slot, the mask of rows accepting it, and each row's
    edges (where its runs of slots start and end): one pass over the edges."""
    delta = [0] * (size + 1)
    edges = []
    for r, mask in enumerate(masks):
        bit = 1 << r
        found = list(_bits(mask ^ (mask << 1)))
        edges.append(found)
        for edge in found:
            delta[edge] ^= bit
    rows, running = [], 0
    for s in range(size):
        running ^= delta[s]
        rows.append(running)
    return rows, edges


@dataclass
class _Field:
    """One field as a table's rows see it, made once per table: its line, each row's slots
    (the intersection of its cells in the field's columns), and the rows that may, and that
    surely, match an unknown value: the code generated row by row matches one with a
    disjunction holding "-", the interval index does not; each search takes the reading that
    cannot make a finding false."""

    field: str
    line: Line
    raw: list[int]
    maybe: int
    surely: int
    width: int  # how many columns read it
    swept: tuple[list[int], list[list[int]]] | None = None

    def group(self, mode: str) -> _Group:
        line = self.line
        if self.swept is None:
            self.swept = _sweep(self.raw, line.size)
        if mode != "cover":
            return _Group(self.field, line, self.raw, line.full, swept=self.swept)
        unknown = (1 << line.size, self.maybe, self.surely)
        return _Group(self.field, line, self.raw, line.full | unknown[0], None, unknown, self.swept)


class _TooLarge(Exception):
    """A field whose rows × slots are more than ``MAX_BITS``: the table is not analysed."""


def _fields(columns: Sequence[Column], cells: Sequence[Sequence[Test]]) -> dict[str, Any]:
    """Each input, by the field it reads (or by column, for an expression): a ``_Field``, or
    the column's cells. _TooLarge for a table too large to analyse."""
    by_input: dict[str, list[int]] = {}
    for c, column in enumerate(columns):
        by_input.setdefault(column.field or f"#{c}", []).append(c)
    found: dict[str, Any] = {}
    for key, at in by_input.items():
        column = columns[at[0]]
        if column.field is None:
            found[key] = [row[at[0]] for row in cells]
            continue
        line = Line(column.type, (row[c] for row in cells for c in at))
        if len(cells) * line.size > MAX_BITS:
            raise _TooLarge(f"{len(cells)} rows, {len(line.points)} values of {column.field}")
        everything = _span(0, line.size)
        raw, maybe, surely = [], 0, 0
        for r, row in enumerate(cells):
            tests = [row[c] for c in at]
            mask = everything
            for t in tests:
                mask &= line.raw(t)
            raw.append(mask)
            if all(accepts_every_value(t) for t in tests):
                maybe |= 1 << r
                if all(isinstance(t, AnyTest) for t in tests):
                    surely |= 1 << r
        found[key] = _Field(column.field, line, raw, maybe, surely, len(at))
    return found


def _groups(fields: dict[str, Any], mode: str) -> list[_Group]:
    """The inputs for one search:

    overlap  known values; an expression column accepts only where its cell is ``-``
    cover    known values and unknown (the last slot); an expression column has a slot for
             unknown (0), one for values no cell names (1) and one per distinct cell
    gaps     known values; expression columns are left out (every cell counts as ``-``)
    """
    groups = []
    for found in fields.values():
        if isinstance(found, _Field):
            groups.append(found.group(mode))
        elif mode != "gaps":
            groups.append(_expression_group(found, mode))
    return groups


def _expression_group(cells: Sequence[Test], mode: str) -> _Group:
    if mode == "overlap":
        own = [1 if accepts_every_value(t) else 0 for t in cells]
        return _Group(None, None, own, 0b1, own)
    labels: dict[Test, int] = {}
    for t in cells:
        if not accepts_every_value(t):
            labels.setdefault(t, len(labels) + 2)
    size = len(labels) + 2
    own, under = [], []
    for t in cells:
        if accepts_every_value(t):
            own.append(_span(0, size))
            under.append(_span(0 if isinstance(t, AnyTest) else 1, size))
        else:
            own.append(1 << labels[t])
            under.append(1 << labels[t])
    return _Group(None, None, under, _span(0, size), own)


class _Budget:
    def __init__(self) -> None:
        self.left = BUDGET

    def spend(self, steps: int) -> bool:
        """Take ``steps``; False once the budget is spent."""
        self.left -= steps
        return self.left >= 0


def _refine(group: _Group, slots: int, rows: int, budget: _Budget, where: bool) -> dict[int, int]:
    """``_split`` for a few rows: the slots cut by each row's in turn."""
    pieces = [(slots, 0)]
    for r in _bits(rows):
        accepts = group.under(r)
        refined = []
        for mask, found in pieces:
            if mask & accepts:
                refined.append((mask & accepts, found | 1 << r))
            if mask & ~accepts:
                refined.append((mask & ~accepts, found))
        pieces = refined
    budget.spend(rows.bit_count() * len(pieces) // 4 + 1)
    parts: dict[int, int] = {}
    for mask, found in pieces:
        parts[found] = parts.get(found, 0) | mask if where else 0
    return parts


def _split(
    group: _Group, slots: int, rows: int, budget: _Budget, *, where: bool = False
) -> dict[int, int]:
    """The slots in ``slots`` by which of ``rows`` surely match them: each set of matching rows
    (0 when none match) once, with the slots where it is (only when ``where``, else 0)."""
    count = rows.bit_count()
    if count <= 16 and count < slots.bit_count():  # refine by each row, however many slots
        return _refine(group, slots, rows, budget, where)
    parts: dict[int, int] = {}
    if slots & group.unknown_bit:
        found = rows & group.surely
        parts[found] = group.unknown_bit if where else 0
        slots &= ~group.unknown_bit
    # The rows here change only where one of them starts or ends a run: one slot of each
    # stretch between those edges stands for it, when there are fewer stretches than slots.
    many = slots.bit_count()
    marks = {0, group.size}
    if many > 2 * count + 2:  # about how many edges the rows have
        for r in _bits(rows):
            marks.update(group.edges(r))
    if 2 < len(marks) < many:
        budget.spend(len(marks))
        ordered = sorted(marks)
        for a, b in itertools.pairwise(ordered):
            stretch = slots >> a & ((1 << (b - a)) - 1)
            if stretch:
                found = rows & group.rows(a + (stretch & -stretch).bit_length() - 1)
                parts[found] = parts.get(found, 0) | stretch << a if where else 0
        return parts
    budget.spend(many)
    for s in _bits(slots):
        found = rows & group.rows(s)
        parts[found] = parts.get(found, 0) | 1 << s if where else 0
    return parts


# -- the searches ---------------------------------------------------------------------------


def _overlaps(groups: list[_Group], n: int) -> dict[int, int]:
    """Each row that overlaps an earlier one → the first earlier row it overlaps."""
    budget = _Budget()
    together: list[int] = []  # sets of rows that one input matches at once
    best: dict[int, int] = {}  # row → the first partner the pairwise checks found
    seen: set[tuple[int, int]] = set()
    stack = [(0, _span(0, n))]
    while stack and budget.left >= 0:
        g, rows = stack.pop()
        if (g, rows) in seen:
            continue
        seen.add((g, rows))
        count = rows.bit_count()
        if g == len(groups):
            together.append(rows)
            budget.spend(1)
        elif count <= PAIRWISE:
            budget.spend(count * count // 2)
            _pairwise(groups[g:], list(_bits(rows)), best, n)
        else:
            group = groups[g]
            for inside in _split(group, group.slots, rows, budget):
                if inside & (inside - 1):
                    stack.append((g + 1, inside))
    # A row's first partner is the least row of the first set (by least row) holding it.
    partner: dict[int, int] = {}
    done = 0
    for rows in sorted(together, key=lambda r: r & -r):
        least = rows & -rows
        new = rows & ~done & ~least
        if new:
            first = least.bit_length() - 1
            partner.update(dict.fromkeys(_bits(new), first))
            done |= new
    for b, a in best.items():
        partner[b] = min(partner.get(b, a), a)
    return partner


def _pairwise(groups: list[_Group], members: list[int], best: dict[int, int], n: int) -> None:
    """Each of ``members`` (rows that overlap in the fields before ``groups``) → the first
    of them it overlaps in ``groups`` too, into ``best`` when earlier than what it holds."""
    for k, b in enumerate(members):
        for a in members[:k]:
            if best.get(b, n) <= a:
                break
            if all(g.own(a) & g.own(b) for g in groups):
                best[b] = a
                break


def _covering(groups: list[_Group], j: int, budget: _Budget) -> int | None:
    """The earlier rows that match the inputs row ``j`` matches, when together they match
    every one of them; None when some input matches row ``j`` and none of them (or the
    budget ran out)."""
    leaves = 0
    done: set[tuple[int, int]] = set()

    def covered(g: int, rows: int) -> bool:
        nonlocal leaves
        if g == len(groups):
            leaves |= rows
            return True
        if (g, rows) in done:
            return True
        if budget.left < 0:
            return False
        group = groups[g]
        for inside in _split(group, group.own(j), rows, budget):
            if not inside or budget.left < 0 or not covered(g + 1, inside):
                return False
        done.add((g, rows))
        return True

    return leaves if covered(0, _span(0, j)) else None


def _gaps(groups: list[_Group], n: int) -> list[list[tuple[_Group, int]]]:
    """Boxes of inputs no row matches: for each field, the slots it is fixed to."""
    found: list[list[tuple[_Group, int]]] = []
    budget = _Budget()
    seen: set[tuple[int, int]] = set()

    def walk(g: int, rows: int, prefix: list[tuple[_Group, int]]) -> None:
        if g == len(groups) or (g, rows) in seen or len(found) > MAX_LISTED or budget.left < 0:
            return
        seen.add((g, rows))
        group = groups[g]
        parts = _split(group, group.slots, rows, budget, where=True)
        if budget.left < 0:
            return
        if 0 in parts:
            found.append([*prefix, (group, parts[0])])
        for inside, slots in sorted(parts.items(), key=lambda p: p[1] & -p[1]):
            if inside:
                walk(g + 1, inside, [*prefix, (group, slots)])

    if groups:
        walk(0, _span(0, n), [])
    return found


# -- tables -----------------------------------------------------------------------------------


def analyze_table(
    table_id: str,
    hit: str,
    columns: Sequence[Column],
    cells: Sequence[Sequence[Test]],
    complete: bool = False,
) -> list[Finding]:
    """What the analysis finds in one table whose cells type-checked: ``cells`` holds each
    row's input tests, ``hit`` the policy's name."""
    if not cells or any(len(row) != len(columns) for row in cells):
        return []
    name = f"table {table_id!r}"
    try:
        fields = _fields(columns, cells)
    except _TooLarge as exc:
        return [
            Finding(
                (),
                f"{name} is too large to analyse ({exc} in its cells): its rows were not "
                "checked for overlaps, gaps or rows that never win",
            )
        ]
    findings: list[Finding] = []
    never = []
    for j in range(len(cells)):
        empty = next(
            (
                f
                for f in fields.values()
                if isinstance(f, _Field) and not f.raw[j] & f.line.full and not f.maybe >> j & 1
            ),
            None,
        )
        if empty is not None:
            never.append(j)
            if len(never) <= MAX_LISTED:
                findings.append(
                    Finding(
                        ("rows", j),
                        f"{name} row {j + 1} can never match: no value of {empty.field} "
                        f"passes its {'cells' if empty.width > 1 else 'cell'}",
                    )
                )
    if len(never) > MAX_LISTED:
        findings.append(_more(name, never, "rows can never match"))
    if hit == "unique":
        findings.extend(_overlap_findings(name, _groups(fields, "overlap"), len(cells)))
    elif hit == "first":
        findings.extend(_shadow_findings(name, _groups(fields, "cover"), len(cells), set(never)))
    if complete:
        findings.extend(_gap_findings(name, _groups(fields, "gaps"), len(cells)))
    return findings


def _more(name: str, rows: list[int], what: str) -> Finding:
    unlisted = rows[MAX_LISTED:]
    return Finding(("rows", unlisted[0]), f"{name}: {len(unlisted)} more {what} (not listed)")


def _overlap_findings(name: str, groups: list[_Group], n: int) -> list[Finding]:
    partner = _overlaps(groups, n)
    findings = []
    rows = sorted(partner)
    for b in rows[:MAX_LISTED]:
        a = partner[b]
        parts = []
        for g in groups:
            common = g.own(a) & g.own(b)
            if g.line is not None and common != g.line.full:
                parts.append(f"{g.field} = {_text(g.line.witness(common))}")
        witness = ", ".join(parts) if parts else "every input"
        findings.append(
            Finding(
                ("rows", b),
                f"{name} rows {a + 1} and {b + 1} overlap: {witness} matches both",
                error=True,
            )
        )
    if len(rows) > MAX_LISTED:
        more = _more(name, rows, "rows overlap an earlier row")
        findings.append(Finding(more.path, more.message, error=True))
    return findings


def _shadow_findings(name: str, groups: list[_Group], n: int, never: set[int]) -> list[Finding]:
    findings = []
    shadowed = []
    budget = _Budget()
    # A row that surely matches every input (a "-" in every column) shadows each one after it.
    everything = _span(0, n)
    for g in groups:
        everything &= (
            g.surely
            if g.line is not None
            else sum(1 << r for r, under in enumerate(g.raw) if under == g.slots)
        )
    catch_all = (everything & -everything).bit_length() - 1 if everything else n
    for j in range(1, n):
        if j in never or budget.left < 0:
            continue
        leaves = 1 << catch_all if j > catch_all else _covering(groups, j, budget)
        if leaves is None:
            continue
        shadowed.append(j)
        if len(shadowed) > MAX_LISTED:
            continue
        earlier = list(_bits(leaves))
        alone = next((i for i in earlier if all(g.own(j) & ~g.under(i) == 0 for g in groups)), None)
        if alone is not None:
            which = f"row {alone + 1}"
        else:
            listed = ", ".join(str(i + 1) for i in earlier[:5])
            which = f"one of rows {listed}{', …' if len(earlier) > 5 else ''}"
        findings.append(
            Finding(
                ("rows", j),
                f"{name} row {j + 1} can never win: every input that matches it "
                f"matches {which} first",
            )
        )
    if len(shadowed) > MAX_LISTED:
        findings.append(_more(name, shadowed, "rows can never win"))
    return findings


def _gap_findings(name: str, groups: list[_Group], n: int) -> list[Finding]:
    findings: list[Finding] = []
    for box in _gaps(groups, n):
        *fixed, (group, slots) = box
        assert group.line is not None and group.field is not None
        prefix = []
        for g, mask in fixed:
            assert g.line is not None and g.field is not None
            prefix.extend(g.line.describe(g.field, mask)[:1])
        phrases = group.line.describe(group.field, slots) or [f"any {group.field}"]
        for phrase in phrases:
            if len(findings) < MAX_LISTED:
                findings.append(
                    Finding(
                        ("complete",),
                        f"{name} is marked complete, but no row matches "
                        + ", ".join([*prefix, phrase]),
                    )
                )
            elif len(findings) == MAX_LISTED:
                findings.append(Finding(("complete",), f"{name} has more gaps than listed"))
                return findings
    return findings


# -- conditions -------------------------------------------------------------------------------

_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
_NEGATE = {
    "==": "!=",
    "!=": "==",
    "<": ">=",
    "<=": ">",
    ">": "<=",
    ">=": "<",
    "in": "not in",
    "not in": "in",
}
_KINDS = {"integer", "number", "string", "boolean"}


def _conjuncts(node: Node) -> Iterator[Node]:
    if isinstance(node, BoolOp) and node.op == "and":
        for operand in node.operands:
            yield from _conjuncts(operand)
    else:
        yield node


def _fits(slot: Slot, value: Any) -> bool:
    """Whether a literal is of the kind the slot's values are (so the comparison is one)."""
    kind = slot.type.kind
    if isinstance(value, bool):
        return kind == "boolean"
    if isinstance(value, int | float):
        return kind in ("integer", "number")
    return isinstance(value, str) and kind == "string"


class _Atom(NamedTuple):
    """A comparison of one value with literals: the value, the comparison as a unary test, and
    what to print of it (``op`` is empty for a boolean tested by itself)."""

    slot: Slot
    test: Test
    op: str
    value: Any

    def __str__(self) -> str:
        path, op, value = self.slot.path, self.op, self.value
        if not op:
            return path if value else f"not {path}"
        if op in ("in", "not in"):
            return f"{path} {op} {_listed(list(value))}"
        return f"{path} {op} {_text(value)}"


def _atom(node: Node, negated: bool = False) -> _Atom | None:
    """A conjunct that compares one value with literals; None for anything else."""
    if isinstance(node, Not):
        return _atom(node.operand, not negated)
    if isinstance(node, Slot):
        if node.type.kind != "boolean":
            return None
        return _Atom(node, EqTest(not negated), "", not negated)
    if not isinstance(node, Compare):
        return None
    return _compare_atom(node, _NEGATE[node.op] if negated else node.op)


def _compare_atom(node: Compare, op: str) -> _Atom | None:
    left, right = node.left, node.right
    if op in ("in", "not in"):
        if not isinstance(left, Slot) or not isinstance(right, ListConst):
            return None
        if not all(_fits(left, v) for v in right.values) or left.type.kind not in _KINDS:
            return None
        test: Test = InTest(tuple(right.values))
        return _Atom(left, test if op == "in" else NotTest((test,)), op, right.values)
    if isinstance(left, Slot) and isinstance(right, Const):
        slot, value = left, right.value
    elif isinstance(right, Slot) and isinstance(left, Const):
        slot, value, op = right, left.value, _FLIP[op]
    else:
        return None
    if slot.type.kind not in _KINDS or not _fits(slot, value):
        return None
    if op == "==":
        test = EqTest(value)
    elif op == "!=":
        test = NotTest((EqTest(value),))
    else:
        test = CmpTest(op, value)
    return _Atom(slot, test, op, value)


def _subject(node: Node) -> tuple[Slot, str] | None:
    """The value a conjunct compares with literals and the comparison (negations applied),
    cheaply, before it is read as a test; None for any other conjunct."""
    negated = False
    while isinstance(node, Not):
        node, negated = node.operand, not negated
    if isinstance(node, Slot):
        return (node, "") if node.type.kind == "boolean" else None
    if not isinstance(node, Compare):
        return None
    op = _NEGATE[node.op] if negated else node.op
    if isinstance(node.left, Slot) and isinstance(node.right, Const | ListConst):
        return node.left, op
    if isinstance(node.right, Slot) and isinstance(node.left, Const):
        return node.right, op
    return None


def _alone_never(node: Node, slot: Slot, op: str) -> bool:
    """Whether one comparison by itself might hold for no value (a quick filter: the others
    are not read). ``==`` and ``in`` hold for their literals, which the type check keeps in an
    enum, unless the list is empty or no literal is an integer for an integer; the others
    can exclude every value of an enum or a boolean, and nothing is below ``""``."""
    kind = slot.type.kind
    if op in ("==", "in"):
        while isinstance(node, Not):
            node = node.operand
        assert isinstance(node, Compare)
        literal = node.right if isinstance(node.left, Slot) else node.left
        if isinstance(literal, ListConst):
            values = literal.values
        elif isinstance(literal, Const):
            values = (literal.value,)
        else:  # pragma: no cover - _subject found a literal
            return False
        return not values or (kind == "integer" and any(isinstance(v, float) for v in values))
    return bool(op) and kind in ("string", "boolean")


def contradiction(node: Node) -> str | None:
    """Why a condition can never be true, when its top-level ``and`` holds comparisons of one
    value with literals that no value passes together; None otherwise."""
    by_slot: dict[str, list[tuple[Node, Slot, str]]] = {}
    for conjunct in _conjuncts(node):
        subject = _subject(conjunct)
        if subject is not None and subject[0].type.kind in _KINDS:
            by_slot.setdefault(subject[0].path, []).append((conjunct, *subject))
    for found in by_slot.values():
        if len(found) == 1 and not _alone_never(*found[0]):
            continue
        atoms = [a for a in (_atom(conjunct) for conjunct, _, _ in found) if a is not None]
        if not atoms:
            continue
        line = Line(atoms[0].slot.type, (a.test for a in atoms))
        masks = [line.mask(a.test) for a in atoms]
        together = line.full
        for mask in masks:
            together &= mask
        if together:
            continue
        texts = [str(a) for a in atoms]
        for k, mask in enumerate(masks):
            if not mask:
                return f"{texts[k]} is never true"
        for a in range(len(masks)):
            for b in range(a + 1, len(masks)):
                if not masks[a] & masks[b]:
                    return f"{texts[a]} and {texts[b]} cannot both be true"
        return f"{', '.join(texts[:-1])} and {texts[-1]} cannot all be true"
    return None
