"""Decision tables: the function that finds a table's matching rows (bucketed by an indexed
column, a bisect over intervals, or the rows in order) and the functions that turn matches
into outputs, per the table's hit policy.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.codegen import Emitter, FunctionWriter
from engine.compiler.build import TablePlan
from engine.compiler.generate.output import Output
from engine.compiler.index import index_column
from engine.generated import RAW_MATCHES, RAW_VALUES, TABLE_OUTPUTS, VALUES, slot_name
from engine.hitpolicies import HitPolicy, Rows, RowsAt
from engine.tables import (
    INDEX_MIN_ROWS,
    AnyTest,
    emit_test,
    equality_values,
    interval_index,
)

# Interval tables search the floats just above their points when every point is below this.
_EXACT_BELOW = 2.0**52


def table_functions(g: Output, plan: TablePlan) -> tuple[str, str]:
    """The names of a table's match function and of its hit-policy resolver."""
    found = g.table_names.get(plan.position)
    if found is None:
        computed = computed_rows(g, plan)
        if computed is not None:  # a function of the matches and of what the cells read
            resolve = computed.resolve
        else:
            policy = plan.policy
            resolve = g.ns.add(policy.resolver(plan.outputs, plan.ranks, plan.model.aggregate))
        found = g.table_names[plan.position] = (table_function(g, plan), resolve)
    return found


def table_function(g: Output, plan: TablePlan) -> str:
    """Generate the function returning a table's matches; return its name."""
    first = plan.policy.single
    args = ", ".join(f"x{c}" for c in range(len(plan.inputs)))
    rows = list(range(len(plan.cells)))
    column = index_column(plan)
    name = f"_table{plan.position}"
    if column is None:
        g.add(_rows_function(g, name, plan, rows, args, first, skip=None))
        return name
    buckets: dict[Any, list[int]] = {}
    wildcard: list[int] = []
    for r in rows:
        values = equality_values(plan.cells[r][column])
        if values is None:
            wildcard.append(r)
            for bucket in buckets.values():
                bucket.append(r)
        else:
            for v in dict.fromkeys(values):
                buckets.setdefault(v, sorted(wildcard)).append(r)
    index: dict[Any, Any] = {}
    for k, (value, bucket_rows) in enumerate(buckets.items()):
        fname = f"{name}_b{k}"
        g.add(_rows_function(g, fname, plan, sorted(set(bucket_rows)), args, first, skip=column))
        index[value] = fname
    rest = f"{name}_rest"
    g.add(_rows_function(g, rest, plan, wildcard, args, first, skip=None))
    index_name = g.ns.add({})
    g.deferred_index.append((index_name, index))
    g.table_dispatch[name] = (index_name, column, rest)
    g.add(f"def {name}({args}):\n    return {index_name}.get(x{column}, {rest})({args})\n")
    return name


def _rows_function(
    g: Output,
    name: str,
    plan: TablePlan,
    rows: list[int],
    args: str,
    first: bool,
    skip: int | None,
) -> str:
    """The match function for some rows: a bisect over precomputed intervals when every
    remaining test is on one numeric input, else the rows' tests in order."""
    found = _interval_function(g, name, plan, rows, args, first, skip)
    return found or _sequential_function(g, name, plan, rows, args, first, skip)


def _interval_function(
    g: Output,
    name: str,
    plan: TablePlan,
    rows: list[int],
    args: str,
    first: bool,
    skip: int | None,
) -> str | None:
    if len(rows) < INDEX_MIN_ROWS:
        return None
    column = None
    for r in rows:
        for c, test in enumerate(plan.cells[r]):
            if isinstance(test, AnyTest) or (c == skip and equality_values(test) is not None):
                continue
            if column not in (None, c):
                return None
            column = c
    if column is None or not plan.input_types[column].numeric:
        return None
    index = interval_index([plan.cells[r][column] for r in rows], first)
    if index is None:
        return None
    points, results, unknown = index
    rows_of = (
        (lambda k: rows[k] if k >= 0 else -1) if first else (lambda ks: tuple(rows[k] for k in ks))
    )
    p = g.ns.add(points)
    res = g.ns.add(tuple(rows_of(x) for x in results))
    none = repr(rows_of(unknown))
    x = f"x{column}"
    w = FunctionWriter(f"def {name}({args}):")
    w.line(f"if {x} is None:")
    w.line(f"    return {none}")
    try:
        as_floats = [float(v) for v in points]
    except OverflowError:  # an int beyond every float: search the points themselves
        as_floats = []
    if as_floats == points and all(abs(v) < _EXACT_BELOW for v in as_floats):
        # Each point followed by the next float up: bisect_right counts the entries <= x,
        # which is 2i for x between P[i-1] and P[i] and 2i + 1 for x == P[i], the layout of
        # the results. Exact for every finite x, int or float, as no int and no float lies
        # strictly between a float below 2**52 and the next one.
        steps = [q for v in as_floats for q in (v, math.nextafter(v, math.inf))]
        w.line(f"return {res}[_bisect_right({g.ns.add(steps)}, {x})]")
        return w.source()
    if any(v.__class__ is not float for v in points) and as_floats == points:
        # Comparing a float with an int costs twice a float with a float: search a float
        # copy of the points for float values (the copy is exact, checked above).
        pf = g.ns.add(as_floats)
        w.line(f"P = {pf} if {x}.__class__ is _float else {p}")
        p = "P"
    w.line(f"i = _bisect({p}, {x})")
    w.line(f"if i < {len(points)} and {p}[i] == {x}:")
    w.line(f"    return {res}[2 * i + 1]")
    w.line(f"return {res}[2 * i]")
    return w.source()


def _sequential_function(
    g: Output, name: str, plan: TablePlan, rows: list[int], args: str, first: bool, skip: int | None
) -> str:
    w = FunctionWriter(f"def {name}({args}):")
    if not first:
        w.line("m = []")
    for r in rows:
        conds = []
        for c, test in enumerate(plan.cells[r]):
            if c == skip and equality_values(test) is not None:
                continue  # the bucket lookup already established this cell
            cond = emit_test(test, f"x{c}", g.ns.add)
            if cond is not None:
                conds.append(cond)
        action = f"return {r}" if first else f"m.append({r})"
        if conds:
            w.line(f"if {' and '.join(conds)}:")
            w.indent()
            w.line(action)
            w.dedent()
        else:
            w.line(action)
            if first:
                break
    w.line("return -1" if first else "return m")
    return w.source()


def table_outputs_function(g: Output) -> str:
    """``_tables(decision)``: each table's outputs by table id, what ``Decision.tables``
    returns (``None`` where no row won); a plain decision's class has it as its ``tables``
    property. Generated: a loop over the tables costs more than the work. Each call builds
    new dicts, so a caller may change what it is given. A table with computed cells
    computes them here again, on the decision's values, for the rows that won.
    """
    items = []
    for plan in g.b.tables:
        k, names = plan.position, plan.output_names
        m = f"raw[{RAW_MATCHES + k}]"
        computed = computed_rows(g, plan)
        if computed is not None:
            args = computed.args_from(VALUES)
            items.append(f"{plan.model.id!r}: {computed.outputs}({m}, {args})")
            continue
        if not plan.policy.single:
            of = g.ns.add(outputs_of(g, plan))
            items.append(f"{plan.model.id!r}: {of}({m})")
            continue
        if len(names) == 1:
            # One output: a dict display costs less than copying the row's dict.
            column = g.ns.add(tuple(row[0] for row in plan.outputs))
            row = f"{{{names[0]!r}: {column}[_m{k}]}}"
        else:
            rows = g.ns.add(tuple(dict(zip(names, row, strict=True)) for row in plan.outputs))
            row = f"{rows}[_m{k}].copy()"
        items.append(f"{plan.model.id!r}: None if (_m{k} := {m}) < 0 else {row}")
    outputs = ", ".join(items)
    values = f"    {VALUES} = raw[{RAW_VALUES}]\n" if any(p.computed for p in g.b.tables) else ""
    return (
        f"def {TABLE_OUTPUTS}(decision):\n    raw = decision._raw\n{values}"
        f"    return {{{outputs}}}\n"
    )


def outputs_of(g: Output, plan: TablePlan) -> Callable[..., dict[str, Any] | None]:
    """A table's matches → its outputs by name (one function per table, made once); for a
    table with computed cells, its matches and an evaluation's values ``V``."""
    found = g.table_outputs_of.get(plan.position)
    if found is None and plan.computed:
        computed = computed_rows(g, plan)
        assert computed is not None
        of = g.ns.values[computed.outputs]
        pick = _picker(computed.args)

        def of_values(m: Any, values: tuple[Any, ...]) -> dict[str, Any] | None:
            return of(m, pick(values))  # type: ignore[no-any-return]

        found = g.table_outputs_of[plan.position] = of_values
    if found is None:
        policy = plan.policy
        resolve = policy.resolver(plan.outputs, plan.ranks, plan.model.aggregate)
        found = g.table_outputs_of[plan.position] = policy.outputs(
            plan.output_names, plan.outputs, resolve
        )
    return found


# -- computed output cells ----------------------------------------------------------------------


@dataclass(frozen=True)
class ComputedRows:
    """What a table with computed output cells is evaluated with: the slots its cells read
    (``args``, in the order its row functions take them), and the names bound in the
    generated module of its row functions by row (``cells``), of ``(matches, args)`` → the
    output values rules read (``resolve``), and of ``(matches, args)`` → the decision's
    outputs (``outputs``)."""

    args: tuple[int, ...]
    cells: str
    resolve: str
    outputs: str

    def args_from(self, values: str) -> str:
        """The source of the args tuple, read from the values tuple named ``values``."""
        return "(" + "".join(f"{values}[{i}], " for i in self.args) + ")"

    def args_from_slots(self) -> str:
        """The source of the args tuple, from the slots' locals (inside a decide function)."""
        return "(" + "".join(f"{slot_name(i)}, " for i in self.args) + ")"


def computed_rows(g: Output, plan: TablePlan) -> ComputedRows | None:
    """A table's computed cells as generated functions, one per row that has any (each
    returns the row's output values, its literal ones included); None for a table of
    literal outputs. Made once per table."""
    if not plan.computed:
        return None
    found = g.table_computed.get(plan.position)
    if found is not None:
        return found
    width = len(plan.output_names)
    bodies: dict[int, tuple[Emitter, str]] = {}
    for r in sorted({r for r, _ in plan.computed}):
        em = Emitter(g.ns)
        items = []
        for c in range(width):
            cell = plan.computed.get((r, c))
            if cell is None:
                items.append(_literal(g, plan.outputs[r][c]))
            elif cell.native:
                (part,) = cell.parts
                assert not isinstance(part, str)
                items.append(em.val(part.node))
            else:
                pieces = [
                    repr(part) if isinstance(part, str) else f"_fmt({em.val(part.node)})"
                    for part in cell.parts
                ]
                items.append(" + ".join(pieces))
        bodies[r] = (em, f"return ({', '.join(items)},)")
    args = tuple(sorted({i for em, _ in bodies.values() for i in em.used}))
    place = {slot: k for k, slot in enumerate(args)}
    functions = {}
    for r, (em, body) in bodies.items():
        name = f"_table{plan.position}_row{r}"
        w = FunctionWriter(f"def {name}(A):")
        for index in sorted(em.used):
            w.line(f"{slot_name(index)} = A[{place[index]}]")
        w.line(body)
        g.add(w.source())
        functions[r] = name
    cells = g.ns.add({})
    g.deferred_index.append((cells, functions))
    table = g.ns.values[cells]
    static = tuple(plan.outputs)
    policy, ranks, aggregate = plan.policy, plan.ranks, plan.model.aggregate
    found = g.table_computed[plan.position] = ComputedRows(
        args=args,
        cells=cells,
        resolve=g.ns.add(_resolver(policy, static, table, width, ranks, aggregate)),
        outputs=g.ns.add(
            _outputs(policy, tuple(plan.output_names), static, table, width, ranks, aggregate)
        ),
    )
    return found


def rows_at(g: Output, plan: TablePlan) -> Callable[[tuple[Any, ...]], Rows] | None:
    """For a table with computed cells: an evaluation's values → its rows as that evaluation
    gives them (what ``any`` compares to find a conflict); None for the others."""
    computed = computed_rows(g, plan)
    if computed is None:
        return None
    static, cells = tuple(plan.outputs), g.ns.values[computed.cells]
    width, pick = len(plan.output_names), _picker(computed.args)
    return lambda values: RowsAt(static, cells, pick(values), width)


def _picker(slots: tuple[int, ...]) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    """The values tuple → the args tuple of those slots."""
    return lambda values: tuple(values[i] for i in slots)


def _literal(g: Output, value: Any) -> str:
    """A literal output value in generated source: a scalar as itself, a list or an object
    as a name bound to it (shared, as the rows of a table of literal outputs are)."""
    if value is None or value.__class__ in (str, int, float, bool):
        return repr(value)
    return g.ns.add(value)


def _resolver(
    policy: HitPolicy,
    static: Rows,
    cells: dict[int, Callable[[tuple[Any, ...]], tuple[Any, ...]]],
    width: int,
    ranks: list[tuple[int, ...]] | None,
    aggregate: str | None,
) -> Callable[[Any, tuple[Any, ...]], tuple[Any, ...]]:
    if policy.single:  # the matches are the winning row's position, or -1: no RowsAt
        unknown = (None,) * width

        def resolve_single(matches: int, args: tuple[Any, ...]) -> tuple[Any, ...]:
            if matches < 0:
                return unknown
            cell = cells.get(matches)
            return static[matches] if cell is None else cell(args)

        return resolve_single

    def resolve(matches: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
        rows = RowsAt(static, cells, args, width)
        return policy.resolver(rows, ranks, aggregate)(matches)

    return resolve


def _outputs(
    policy: HitPolicy,
    names: tuple[str, ...],
    static: Rows,
    cells: dict[int, Callable[[tuple[Any, ...]], tuple[Any, ...]]],
    width: int,
    ranks: list[tuple[int, ...]] | None,
    aggregate: str | None,
) -> Callable[[Any, tuple[Any, ...]], dict[str, Any] | None]:
    if policy.single:
        resolve = _resolver(policy, static, cells, width, ranks, aggregate)

        def outputs_single(matches: int, args: tuple[Any, ...]) -> dict[str, Any] | None:
            return None if matches < 0 else dict(zip(names, resolve(matches, args), strict=True))

        return outputs_single

    def outputs(matches: Any, args: tuple[Any, ...]) -> dict[str, Any] | None:
        rows = RowsAt(static, cells, args, width)
        return policy.outputs_at(names, matches, rows, ranks, aggregate)

    return outputs
