"""The prelude of a decide function: every input read once into a local and checked against
its declaration, then the tables evaluated in dependency order; the values bound as ``V``.
"""

from __future__ import annotations

from engine.codegen import Emitter, FunctionWriter
from engine.compiler.generate.output import Output
from engine.compiler.generate.tables import computed_rows, table_functions
from engine.expr import Slot
from engine.generated import VALUES, slot_name
from engine.parts import FieldMeta
from engine.runtime import item_filter


def prelude(g: Output, w: FunctionWriter, exact: bool = False) -> None:  # noqa: PLR0912, PLR0915 -- emits one generated prelude, line by line
    """Read every slot into a local, check its type, evaluate the tables; bind V.

    Fields are read by subscript, all of one object's in one ``try`` (a dict subscript
    costs half a ``get`` call); an object that lacks one of them pays one caught
    ``KeyError`` and is read again with ``get``. Objects are exact dicts by then (anything
    else reads as ``{}``), so no ``__missing__`` runs. With ``exact`` the context itself is
    known to be an exact dict, and its objects are read the same way.
    """
    b = g.b
    counters = {slot.index: key for key, slot in b.env.counters.items()}
    # The fields under each object, and a name per object, parents first, in slot order.
    fields: dict[str, list[tuple[int, str]]] = {}
    names: dict[str, str] = {}
    for path, slot in b.env.slots.items():
        if path == "now()" or slot.index in counters or path.startswith("tables."):
            continue
        parent, _, leaf = path.rpartition(".")
        fields.setdefault(parent, []).append((slot.index, leaf))
        parts = parent.split(".")
        for end in range(1, len(parts) + 1):
            names.setdefault(".".join(parts[:end]), f"o{len(names)}")
    roots = [p for p in names if "." not in p and p != "answers"]
    if exact and roots:
        _read_all(w, "ctx", [(names[p], p) for p in roots])
    done: set[str] = set()

    def obj(prefix: str) -> str:
        name = names[prefix]
        if prefix in done:
            return name
        parent, _, leaf = prefix.rpartition(".")
        if parent:
            w.line(f"{name} = {obj(parent)}.get({leaf!r})")
        elif prefix == "answers":
            w.line(f"{name} = ans if ans is not None else ctx.get('answers')")
        elif not exact:
            w.line(f"{name} = ctx.get({prefix!r})")
        w.line(f"if {name}.__class__ is not _dict:")
        w.indent()
        w.line(f"inv, {name} = _object({name}, inv, {prefix!r})")
        w.dedent()
        done.add(prefix)
        _read_all(w, name, [(slot_name(i), leaf) for i, leaf in fields.get(prefix, ())])
        return name

    for path, slot in b.env.slots.items():
        i = slot.index
        if path == "now()":
            w.line(f"{slot_name(i)} = now_")
        elif i in counters:
            event, within = counters[i]
            w.line(f"{slot_name(i)} = _count(cnt, {event!r}, {within!r})")
        elif not path.startswith("tables."):
            obj(path.rpartition(".")[0])
            _check_value(g, w, i, b.fields[path])
    for plan in b.table_order:
        em = Emitter(g.ns)
        args = ", ".join(em.val(c.node) for c in plan.inputs)
        table_fn, resolve = table_functions(g, plan)
        m = f"m{plan.position}"
        dispatch = g.table_dispatch.get(table_fn)
        if dispatch is not None and all(isinstance(c.node, Slot) for c in plan.inputs):
            # The index lookup of an indexed table, inlined: one call fewer per table.
            index_name, column, rest = dispatch
            key = em.val(plan.inputs[column].node)
            w.line(f"{m} = {index_name}.get({key}, {rest})({args})")
        else:
            w.line(f"{m} = {table_fn}({args})")
        outs = [f"tables.{plan.model.id}.{name}" for name in plan.output_names]
        used = [(k, b.env.slots[p].index) for k, p in enumerate(outs) if p in b.env.slots]
        if used:
            computed = computed_rows(g, plan)
            if computed is None:
                w.line(f"_r = {resolve}({m})")
            else:  # the cells of the rows that won, computed from what they read
                w.line(f"_r = {resolve}({m}, {computed.args_from_slots()})")
            for k, index in used:
                w.line(f"{slot_name(index)} = _r[{k}]")
    values = ", ".join(slot_name(i) for i in range(g.slot_count))
    w.line(f"{VALUES} = ({values}{',' if g.slot_count == 1 else ''})")


def _read_all(w: FunctionWriter, source: str, reads: list[tuple[str, str]]) -> None:
    """``name = source[key]`` for each read; if a key is missing, ``source.get`` for all."""
    if not reads:
        return
    w.line("try:")
    w.indent()
    for name, key in reads:
        w.line(f"{name} = {source}[{key!r}]")
    w.dedent()
    w.line("except KeyError:")
    w.indent()
    for name, key in reads:
        w.line(f"{name} = {source}.get({key!r})" if len(reads) > 1 else f"{name} = None")
    w.dedent()


def _check_value(g: Output, w: FunctionWriter, i: int, meta: FieldMeta) -> None:
    s = slot_name(i)
    kind = meta.type.kind
    expected = _expected_text(meta)
    report = f"inv += (({meta.path!r}, {expected!r}, {s}),)"
    if kind == "datetime":
        w.line(f"if {s} is not None:")
        w.indent()
        w.line(f"_d = _dt({s})")
        w.line("if _d is None:")
        w.indent()
        w.line(report)
        w.dedent()
        w.line(f"{s} = _d")
        w.dedent()
        return
    # The test a valid value passes comes first, so a present, valid value costs one check;
    # None (missing) is told apart only inside the branch.
    if meta.type.enum is not None:
        # A frozenset of strings: one membership test covers the type and the enum.
        enum = g.ns.add(meta.type.enum)
        suspect = f"{s}.__class__ is not _str or {s} not in {enum}"
    else:
        suspect = {
            "string": f"{s}.__class__ is not _str",
            "integer": f"{s}.__class__ is not _int",
            # x - x == 0.0 holds for every finite float, fails for inf and nan, and needs
            # no call; ints (not bools) are numbers too.
            "number": f"({s}.__class__ is not _float or {s} - {s} != 0.0)"
            f" and {s}.__class__ is not _int",
            "boolean": f"{s}.__class__ is not _bool",
            "list": f"{s}.__class__ is not _list",
        }[kind]
    w.line(f"if {suspect}:")
    w.indent()
    w.line(f"if {s} is not None:")
    w.indent()
    w.line(report)
    w.line(f"{s} = None")
    w.dedent()
    w.dedent()
    if kind == "list" and meta.type.item is not None:
        item = meta.type.item
        attrs = tuple((name, t.kind) for name, t in item.attrs or ())
        filt = g.ns.add(item_filter(item.kind, attrs))
        w.line("else:")
        w.indent()
        w.line(f"{s}, _dropped = {filt}({s})")
        w.line("if _dropped:")
        w.indent()
        w.line(f"inv += (({meta.path!r}, {expected!r}, _ITEMS),)")
        w.dedent()
        w.dedent()


def _expected_text(meta: FieldMeta) -> str:
    t = meta.type
    if t.enum is not None:
        return "one of " + ", ".join(sorted(t.enum))
    if t.kind == "list" and t.item is not None:
        return f"list of {t.item.kind if t.item.kind != 'object' else 'objects'}"
    if t.kind == "datetime":
        return "RFC 3339 datetime"
    return t.kind
