"""Message and ``say`` templates: a function rendering the text, and for templates with
``{...}`` parts a function giving the parts' values, for callers that mask some of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.codegen import Emitter, FunctionWriter
from engine.compiler.build import Located
from engine.compiler.generate.output import Output
from engine.generated import VALUES
from engine.parts import ParamTemplate, Template


def template_values_function(g: Output, name: str, parts: list[str | Located]) -> str:
    """The values of a template's ``{...}`` parts, as a tuple (for rendering it masked)."""
    em = Emitter(g.ns)
    values = [em.val(part.node) for part in parts if not isinstance(part, str)]
    body = FunctionWriter("")
    body.line(f"return ({', '.join(values)},)")
    return g.assemble(f"def {name}({VALUES}):", em, body)


def template_function(g: Output, name: str, parts: list[str | Located]) -> str:
    em = Emitter(g.ns)
    pieces = []
    for part in parts:
        if isinstance(part, str):
            pieces.append(repr(part))
        else:
            pieces.append(f"_fmt({em.val(part.node)})")
    body = FunctionWriter("")
    body.line(f"return {' + '.join(pieces) if pieces else repr('')}")
    return g.assemble(f"def {name}({VALUES}):", em, body)


def param_templates(
    g: Output, k: int, params: list[tuple[tuple[str | int, ...], list[str | Located]]]
) -> Callable[[dict[str, Any]], tuple[ParamTemplate, ...]]:
    """Eligibility rule ``k``'s templated offer parameters: their values functions now, the
    ``ParamTemplate``s once the module is compiled."""
    names = []
    for j, (_, parts) in enumerate(params):
        name = f"_param{k}_{j}"
        if has_parts(parts):
            g.add(template_values_function(g, name, parts))
        names.append(name)

    def finish(ns: dict[str, Any]) -> tuple[ParamTemplate, ...]:
        found = []
        for name, (path, parts) in zip(names, params, strict=True):
            template = template_meta(parts, ns.get(name)) or Template(
                pieces=("".join(str(part) for part in parts),),
                values=lambda _values: (),
                reads=frozenset(),
            )
            native = len(parts) == 1 and not isinstance(parts[0], str)
            found.append(ParamTemplate(path=path, template=template, native=native))
        return tuple(found)

    return finish


def has_parts(parts: list[str | Located]) -> bool:
    return any(not isinstance(part, str) for part in parts)


def template_meta(
    parts: list[str | Located], values: Callable[[tuple[Any, ...]], tuple[Any, ...]] | None
) -> Template | None:
    """A template with ``{...}`` parts, for rendering it masked; None for plain text."""
    if values is None:
        return None
    pieces = tuple(part if isinstance(part, str) else part.reads for part in parts)
    reads = frozenset(p for piece in pieces if not isinstance(piece, str) for p in piece)
    return Template(pieces=pieces, values=values, reads=reads)
