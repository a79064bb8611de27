"""The types and the typed IR of checked expressions, and the error the checker raises.

``engine.expr`` builds this IR from author text; ``engine.builtins`` declares the built-in
functions over it; ``engine.codegen`` turns it into Python source.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any

# ---------------------------------------------------------------------------------------------
# Types


@dataclass(frozen=True, slots=True)
class Type:
    """A value's type. ``item`` for lists; ``attrs`` for objects; ``enum`` restricts strings."""

    kind: str  # string integer number boolean datetime list object
    item: Type | None = None
    attrs: tuple[tuple[str, Type], ...] | None = None
    enum: frozenset[str] | None = None

    def __str__(self) -> str:
        if self.kind == "list" and self.item is not None:
            return f"list of {self.item}"
        return self.kind

    @property
    def numeric(self) -> bool:
        return self.kind in ("integer", "number")

    def plain(self) -> Type:
        """The same type without its enum restriction."""
        return Type(self.kind, self.item, self.attrs) if self.enum is not None else self

    def attr(self, name: str) -> Type | None:
        for key, value in self.attrs or ():
            if key == name:
                return value
        return None


STRING = Type("string")
INTEGER = Type("integer")
NUMBER = Type("number")
BOOLEAN = Type("boolean")
DATETIME = Type("datetime")
OBJECT = Type("object")
SCALAR_TYPES = {
    "string": STRING,
    "integer": INTEGER,
    "number": NUMBER,
    "boolean": BOOLEAN,
    "datetime": DATETIME,
}


def list_of(item: Type | None) -> Type:
    return Type("list", item=item)


def comparable(a: Type, b: Type) -> bool:
    """Whether ``==`` between values of these types is meaningful."""
    if a.numeric and b.numeric:
        return True
    if a.kind != b.kind:
        return False
    if a.kind == "list":
        return a.item is None or b.item is None or comparable(a.item, b.item)
    return a.kind != "object"


def orderable(a: Type, b: Type) -> bool:
    return (a.numeric and b.numeric) or (a.kind == b.kind and a.kind in ("string", "datetime"))


# ---------------------------------------------------------------------------------------------
# IR: every node has ``type`` and ``nullable`` (whether it can be unknown)


@dataclass(frozen=True, slots=True)
class Node:
    type: Type
    nullable: bool


@dataclass(frozen=True, slots=True)
class Const(Node):
    value: Any


@dataclass(frozen=True, slots=True)
class ListConst(Node):
    values: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Slot(Node):
    """A value read before evaluation: a context field, a table output, a counter, ``now``."""

    index: int
    path: str


@dataclass(frozen=True, slots=True)
class Var(Node):
    """The item variable of an ``any``/``all`` generator."""

    name: str


@dataclass(frozen=True, slots=True)
class VarAttr(Node):
    var: str
    attr: str


@dataclass(frozen=True, slots=True)
class Not(Node):
    operand: Node


@dataclass(frozen=True, slots=True)
class BoolOp(Node):
    op: str  # and | or
    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Compare(Node):
    op: str  # == != < <= > >= in not in
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Arith(Node):
    op: str  # + - * / %
    left: Node
    right: Node
    # The author's text of the operation, for the decision's errors (engine.diagnose).
    text: str = field(default="", compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Neg(Node):
    operand: Node


@dataclass(frozen=True, slots=True)
class Call(Node):
    name: str
    args: tuple[Node, ...]
    extra: Any = None  # the literal a check kept: the pattern of matches(), the digits of round()


@dataclass(frozen=True, slots=True)
class Missing(Node):
    slot: Slot


@dataclass(frozen=True, slots=True)
class Quantifier(Node):
    kind: str  # any | all
    var: str
    source: Node
    body: Node


# ---------------------------------------------------------------------------------------------
# Errors


class ExpressionError(Exception):
    """A problem at character ``offset`` (0-based) of the expression's text."""

    def __init__(self, message: str, offset: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


def error_at(node: ast.AST, message: str) -> ExpressionError:
    """An ExpressionError at ``node``'s place in the expression."""
    # Expressions are parsed as one line (see engine.expr.check_expression), so col_offset
    # is the offset.
    return ExpressionError(message, getattr(node, "col_offset", 0))


def with_article(t: Type) -> str:
    """A type with its article: "an integer", "a string"."""
    text = str(t)
    return ("an " if text[0] in "aeiou" else "a ") + text


def describe(node: ast.AST) -> str:
    """The author's text of ``node``, shortened to 60 characters, for error messages."""
    try:
        text = ast.unparse(node)
    except Exception:  # pragma: no cover - unparse of a parsed tree does not fail
        return type(node).__name__
    return text if len(text) <= 60 else text[:57] + "..."
