"""Reading ruleset text: YAML 1.2 (JSON included) into plain data, remembering where each value was.

PyYAML composes the node graph (with libyaml when available); the construction into Python
values is ours, so that scalars resolve by YAML 1.2's core schema (``on``/``yes``/``no`` stay
strings), unknown tags are refused, alias expansion is bounded, and every value's position is
kept in a ``Locator`` keyed by its path in the document.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from engine.errors import Problem, RulesetError

MAX_TEXT_BYTES = 4 * 1024 * 1024
# The longest list a document may hold (a decision table's rows); longer ones are refused
# before their items are built.
MAX_LIST = 10_000
MAX_NODES = 200_000

Path = tuple[str | int, ...]

try:
    _BaseLoader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _BaseLoader = yaml.SafeLoader

_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"
# Plain scalars are resolved by YAML 1.2's core schema when values are built (resolve_plain),
# so the loader only marks them, instead of running PyYAML's YAML 1.1 patterns on each.
_PLAIN = "tag:yaml.org,2002:plain"


class _Loader(_BaseLoader):  # type: ignore[misc]
    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        if kind is yaml.ScalarNode:
            if implicit[0]:
                return _MERGE if value == "<<" else _PLAIN
            return _STR
        tag: str = super().resolve(kind, value, implicit)
        return tag


_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_TRUE = re.compile(r"^(?:true|True|TRUE)$")
_FALSE = re.compile(r"^(?:false|False|FALSE)$")
_INT = re.compile(r"^[-+]?[0-9]+$")
_OCT = re.compile(r"^0o[0-7]+$")
_HEX = re.compile(r"^0x[0-9a-fA-F]+$")
_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
_INF = re.compile(r"^[-+]?\.(?:inf|Inf|INF)$")
_NAN = re.compile(r"^\.(?:nan|NaN|NAN)$")

_STANDARD_TAGS = {
    _PLAIN,
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:seq",
    "tag:yaml.org,2002:map",
    "tag:yaml.org,2002:timestamp",
    "tag:yaml.org,2002:merge",
}


@dataclass(frozen=True, slots=True)
class Position:
    """Where a value is in the source: 1-based start line and column, scalar style, end line."""

    line: int
    column: int
    style: str | None = None
    end_line: int = 0


@dataclass
class Locator:
    """Maps a path in the document (``("eligibility", 0, "when")``) to its position in the text."""

    file: str | None = None
    text: str = ""
    positions: dict[Path, Position] = field(default_factory=dict)
    # Quotes inserted by the flow-condition repair: 0-based line → 0-based columns.
    shifts: dict[int, list[int]] = field(default_factory=dict)

    def original_column(self, line: int, column: int) -> int:
        """A 0-based column of the parsed text → the column in the author's text."""
        return column - sum(1 for c in self.shifts.get(line, ()) if c < column)

    def inserted_quote(self, line: int, column: int) -> bool:
        return column in self.shifts.get(line, ())

    def position(self, path: Path) -> Position | None:
        """The position of ``path``, or of its nearest located ancestor."""
        while True:
            found = self.positions.get(path)
            if found is not None or not path:
                return found
            path = path[:-1]

    def problem(self, path: Path, message: str) -> Problem:
        pos = self.position(path)
        return Problem(
            message=message,
            path=format_path(path),
            line=pos.line if pos else None,
            column=pos.column if pos else None,
            file=self.file,
        )

    def problem_in_text(self, path: Path, offset: int, message: str) -> Problem:
        """A problem at character ``offset`` (0-based) of the scalar value at ``path``."""
        pos = self.positions.get(path)
        if pos is None:  # a mapping, or JSON read without positions: the nearest known place
            return self.problem(path, message)
        line, column = self._locate(pos, offset)
        return Problem(
            message=message, path=format_path(path), line=line, column=column, file=self.file
        )

    def _locate(self, pos: Position, offset: int) -> tuple[int, int]:
        """Map an offset in a scalar's value to a line and column of the source.

        A multi-line value is its source lines' contents joined by one character (a space
        when YAML folds them, a newline in a literal block), so we walk those contents.
        """
        lines = self.text.splitlines()
        block = pos.style in ("|", ">")
        first = pos.line + 1 if block else pos.line
        last = max(pos.end_line, first)
        pieces: list[tuple[int, int, int]] = []  # (line, start column, length)
        block_indent = 0
        for number in range(first, min(last, len(lines)) + 1):
            content = lines[number - 1]
            indent = len(content) - len(content.lstrip(" \t"))
            if number == pos.line and not block:
                start = pos.column + (1 if pos.style in ("'", '"') else 0)
            elif block:
                # A block keeps indentation beyond its own as part of the value.
                block_indent = block_indent or indent
                start = min(indent, block_indent) + 1
            else:
                start = indent + 1
            piece = content[start - 1 :].rstrip()
            if not piece and number != first:
                continue
            pieces.append((number, start, len(piece)))
        if not pieces:
            return pos.line, pos.column
        for number, start, length in pieces[:-1]:
            if offset <= length:
                return number, start + offset
            offset -= length + 1
        number, start, _ = pieces[-1]
        return number, start + offset


def format_path(path: Path) -> str:
    """``("eligibility", 0, "when")`` → ``eligibility[0].when``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def load_document(text: str | bytes, filename: str | None = None) -> tuple[Any, Locator]:
    """Parse YAML or JSON text into plain data and a Locator; raise RulesetError if it can't."""
    if isinstance(text, bytes):
        if len(text) > MAX_TEXT_BYTES:
            raise _too_large(len(text), filename)
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RulesetError(
                [Problem(f"the document is not valid UTF-8 (byte {exc.start})", file=filename)]
            ) from None
    if len(text) > MAX_TEXT_BYTES:
        raise _too_large(len(text), filename)
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise RulesetError(
            [Problem("the document contains a NUL character", line=line, column=1, file=filename)]
        )
    locator = Locator(file=filename, text=text)
    try:
        nodes = _compose(text, locator)
    except yaml.reader.ReaderError as exc:
        json_data = _as_json(text)
        if json_data is not _NOT_JSON:
            # No positions inside: problems point at the document's start and name the path.
            locator.positions[()] = Position(1, 1)
            return json_data, locator
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise RulesetError(
            [
                Problem(
                    f"the document contains a character YAML does not allow ({exc.character!r})",
                    line=line,
                    column=column,
                    file=filename,
                )
            ]
        ) from None
    except yaml.MarkedYAMLError as exc:
        json_data = _as_json(text)
        if json_data is not _NOT_JSON:
            # No positions inside: problems point at the document's start and name the path.
            locator.positions[()] = Position(1, 1)
            return json_data, locator
        mark = exc.problem_mark or exc.context_mark
        message = exc.problem or exc.context or "invalid YAML"
        raise RulesetError(
            [
                Problem(
                    f"invalid YAML: {message}",
                    line=mark.line + 1 if mark else None,
                    column=mark.column + 1 if mark else None,
                    file=filename,
                )
            ]
        ) from None
    except (yaml.YAMLError, RecursionError, ValueError) as exc:
        raise RulesetError([Problem(f"invalid YAML: {exc}", file=filename)]) from None
    if len(nodes) != 1:
        raise RulesetError(
            [
                Problem(
                    "expected exactly one document, found none"
                    if not nodes
                    else f"expected exactly one document, found {len(nodes)}",
                    line=1,
                    column=1,
                    file=filename,
                )
            ]
        )
    builder = _Builder(locator)
    # Only anchors ('&') let aliases multiply a document; without one, sizes are what they read.
    if "&" in text and _expanded_size(nodes[0], {}) > MAX_NODES:
        # Refused before building: a billion-laughs document is a few hundred nodes that
        # aliases multiply, and building its first MAX_NODES values would take a second.
        raise builder.fail(
            nodes[0],
            f"the document expands to more than {MAX_NODES} values (check anchors and aliases)",
        )
    data = builder.build(nodes[0], ())
    return data, locator


# The documented example writes tree branches as
# `{when: customer.tier in ["gold", "platinum"], goto: x}`.
# Strict YAML ends a plain scalar in a flow mapping at '[', ']' or ',', so that line does not
# parse; we accept it by quoting such conditions and parsing again.
_FLOW_CONDITION = re.compile(r"(\{\s*when:\s*)(?![\s'\"])(.+)(,\s*goto:\s*[a-z0-9-]+\s*\})")


def _compose(text: str, locator: Locator) -> list[yaml.Node]:
    try:
        return list(yaml.compose_all(text, Loader=_Loader))
    except yaml.MarkedYAMLError:
        quoted, shifts = _quote_flow_conditions(text)
        if not shifts:
            raise
        try:
            nodes = list(yaml.compose_all(quoted, Loader=_Loader))
        except yaml.YAMLError:
            pass
        else:
            locator.shifts = shifts
            return nodes
        raise


def _quote_flow_conditions(text: str) -> tuple[str, dict[int, list[int]]]:
    """Quote unquoted flow-mapping conditions; return the text and, per 0-based line, the
    0-based columns (in the new text) where a quote was inserted."""
    lines = text.split("\n")
    shifts: dict[int, list[int]] = {}
    for n, line in enumerate(lines):
        match = _FLOW_CONDITION.search(line)
        if match is None:
            continue
        condition = match.group(2)
        quote = (
            '"'
            if '"' not in condition and "\\" not in condition
            else ("'" if "'" not in condition else "")
        )
        if not quote:
            continue
        start = match.start(2)
        lines[n] = line[:start] + quote + condition + quote + line[match.end(2) :]
        shifts[n] = [start, start + len(condition) + 1]
    return "\n".join(lines), shifts


_NOT_JSON = object()


def _as_json(text: str) -> Any:
    """JSON that YAML refuses (surrogate-pair escapes, raw C1 characters) still loads, without
    positions: its errors then name paths instead of lines."""
    if not text.lstrip().startswith("{"):
        return _NOT_JSON
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        return _NOT_JSON
    return data


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a finite number")


def _too_large(size: int, filename: str | None) -> RulesetError:
    return RulesetError(
        [Problem(f"the document is {size} bytes; the limit is {MAX_TEXT_BYTES}", file=filename)]
    )


def _expanded_size(node: yaml.Node, sizes: dict[int, int], depth: int = 0) -> int:
    """How many values ``node`` becomes once aliases are expanded, counting each distinct
    node once (an alias is the same node object as its anchor); capped past MAX_NODES.
    Past 100 levels it stops counting: the builder refuses that depth with its position."""
    known = sizes.get(id(node))
    if known is not None:
        return known
    if depth > 100:
        return 1
    sizes[id(node)] = MAX_NODES + 1  # a node inside itself (a recursive alias) is too large
    size = 1
    if isinstance(node, yaml.SequenceNode):
        for item in node.value:
            size += _expanded_size(item, sizes, depth + 1)
            if size > MAX_NODES:
                break
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            size += _expanded_size(key, sizes, depth + 1) + _expanded_size(value, sizes, depth + 1)
            if size > MAX_NODES:
                break
    sizes[id(node)] = size
    return size


class _Builder:
    """Turns a composed node graph into Python values, bounding what aliases can expand to."""

    def __init__(self, locator: Locator) -> None:
        self.locator = locator
        self.count = 0
        self.depth = 0

    def fail(self, node: yaml.Node, message: str) -> RulesetError:
        mark = node.start_mark
        return RulesetError(
            [Problem(message, line=mark.line + 1, column=mark.column + 1, file=self.locator.file)]
        )

    def position(self, node: yaml.Node) -> Position:
        mark = node.start_mark
        style = getattr(node, "style", None) or None
        if self.locator.inserted_quote(mark.line, mark.column):
            style = None  # the author wrote it plain; columns count from its first character
        column = self.locator.original_column(mark.line, mark.column)
        return Position(mark.line + 1, column + 1, style, node.end_mark.line + 1)

    def build(self, node: yaml.Node, path: Path) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise self.fail(
                node,
                f"the document expands to more than {MAX_NODES} values (check anchors and aliases)",
            )
        if node.tag not in _STANDARD_TAGS:
            raise self.fail(node, f"unsupported YAML tag {node.tag!r}")
        self.depth += 1
        if self.depth > 100:
            raise self.fail(node, "the document nests more than 100 levels deep")
        try:
            if path not in self.locator.positions:
                self.locator.positions[path] = self.position(node)
            if isinstance(node, yaml.ScalarNode):
                return self.scalar(node)
            if isinstance(node, yaml.SequenceNode):
                if len(node.value) > MAX_LIST:
                    raise self.fail(
                        node, f"a list of {len(node.value)} items; the limit is {MAX_LIST}"
                    )
                return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
            if isinstance(node, yaml.MappingNode):
                return self.mapping(node, path)
            raise self.fail(node, "unsupported YAML node")  # pragma: no cover
        finally:
            self.depth -= 1

    def mapping(self, node: yaml.MappingNode, path: Path) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                merged = self.build(value_node, path)
                sources = merged if isinstance(merged, list) else [merged]
                for source in sources:
                    if not isinstance(source, dict):
                        raise self.fail(value_node, "'<<' must merge a mapping")
                    for k, v in source.items():
                        out.setdefault(k, v)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                raise self.fail(key_node, "mapping keys must be plain values")
            # Keys are always text: `on:` is a key, not the boolean true.
            key = key_node.value
            if key in out:
                raise self.fail(key_node, f"duplicate key {key!r}")
            self.locator.positions[(*path, key, "<key>")] = self.position(key_node)
            out[key] = self.build(value_node, (*path, key))
        return out

    def scalar(self, node: yaml.ScalarNode) -> Any:
        value: str = node.value
        # libyaml reports plain scalars with style '' where PyYAML says None.
        if node.style or node.tag == "tag:yaml.org,2002:str":
            return value
        try:
            resolved = resolve_plain(value)
        except ValueError:  # an integer longer than Python will convert
            raise self.fail(node, "number too large") from None
        if isinstance(resolved, float) and not math.isfinite(resolved):
            raise self.fail(node, f"{value} is not a finite number; JSON cannot carry it")
        return resolved


def resolve_plain(value: str) -> Any:
    """Resolve a plain scalar by YAML 1.2's core schema."""
    if _NULL.match(value):
        return None
    if _TRUE.match(value):
        return True
    if _FALSE.match(value):
        return False
    if _INT.match(value):
        return int(value)
    if _OCT.match(value):
        return int(value[2:], 8)
    if _HEX.match(value):
        return int(value[2:], 16)
    if _FLOAT.match(value):
        return float(value)
    if _INF.match(value):
        return -math.inf if value.startswith("-") else math.inf
    if _NAN.match(value):
        return math.nan
    return value
