"""The generated module as it is written: its source functions, the namespace its constants
are bound in, and what one part of the generator leaves for another (table functions already
written, index dicts to point at functions once they exist).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine.codegen import Emitter, FunctionWriter, Namespace
from engine.compiler.build import Build
from engine.generated import VALUES, slot_name

if TYPE_CHECKING:
    from engine.compiler.generate.tables import ComputedRows


class Output:
    """The generated module of one ruleset, as it is written."""

    def __init__(self, b: Build) -> None:
        self.b = b
        self.ns = Namespace()
        self.sources: list[str] = []
        self.slot_count = len(b.env.slots)
        # Index dicts are bound by name before the functions they point to exist.
        self.deferred_index: list[tuple[str, dict[Any, str]]] = []
        self.table_names: dict[int, tuple[str, str]] = {}
        # Indexed table function → (index dict, indexed column, function for other values).
        self.table_dispatch: dict[str, tuple[str, int, str]] = {}
        self.table_outputs_of: dict[int, Callable[..., dict[str, Any] | None]] = {}
        # Table position → its computed output cells' functions.
        self.table_computed: dict[int, ComputedRows] = {}
        self.collected: dict[tuple[str, bool], list[str]] = {}
        self._names = itertools.count()

    def fn_name(self, prefix: str) -> str:
        """A fresh name: nested buckets are named before their parent is added."""
        return f"{prefix}_{next(self._names)}"

    def add(self, source: str) -> None:
        self.sources.append(source)

    def assemble(self, header: str, em: Emitter, body: FunctionWriter) -> str:
        """A function of the values tuple ``V``: ``header``, the slots ``em`` read bound to
        locals, then ``body``."""
        w = FunctionWriter(header)
        for index in sorted(em.used):
            w.line(f"{slot_name(index)} = {VALUES}[{index}]")
        w.lines.extend(body.lines[1:])
        if len(w.lines) == 1:
            w.line("return None")
        return w.source()


def link(ns: dict[str, Any], deferred: list[tuple[str, dict[Any, str]]]) -> None:
    """Point each index dict at the bucket functions it names, now that they exist."""
    for index_name, index in deferred:
        ns[index_name].update({value: ns[fname] for value, fname in index.items()})
