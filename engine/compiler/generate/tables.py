"""Decision tables: the function that finds a table's matching rows (bucketed by an indexed
column, a bisect over intervals, or the rows in order) and the functions that turn matches
into outputs, per the table's hit policy.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from engine.codegen import FunctionWriter
from engine.compiler.build import TablePlan
from engine.compiler.generate.output import Output
from engine.compiler.index import index_column
from engine.generated import RAW_MATCHES, TABLE_OUTPUTS
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
        resolve = g.ns.add(plan.policy.resolver(plan.outputs, plan.ranks, plan.model.aggregate))
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
    new dicts, so a caller may change what it is given.
    """
    items = []
    for plan in g.b.tables:
        k, names = plan.position, plan.output_names
        m = f"raw[{RAW_MATCHES + k}]"
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
    return f"def {TABLE_OUTPUTS}(decision):\n    raw = decision._raw\n    return {{{outputs}}}\n"


def outputs_of(g: Output, plan: TablePlan) -> Callable[[Any], dict[str, Any] | None]:
    """A table's matches → its outputs by name (one function per table, made once)."""
    found = g.table_outputs_of.get(plan.position)
    if found is None:
        policy = plan.policy
        resolve = policy.resolver(plan.outputs, plan.ranks, plan.model.aggregate)
        found = g.table_outputs_of[plan.position] = policy.outputs(
            plan.output_names, plan.outputs, resolve
        )
    return found
